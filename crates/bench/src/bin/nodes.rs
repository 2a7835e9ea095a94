//! `nodes`: the multi-node and S3 benchmark of issue 5: one node against two nodes on
//! one PostgreSQL database and one KMIP server, and the S3 chunk store (moto) against
//! the local directory, measured in the same run on the same machine.
//!
//! ```text
//! cargo build --release -p headlock -p bench
//! cargo run --release -p bench --bin nodes [-- --clients 8 --duration 10 --size-mib 256]
//! ```
//!
//! What runs, all on this machine: a throwaway PostgreSQL (`scripts/postgres.sh`
//! through testkit, a fresh database per deployment), moto (`scripts/moto.sh`, a fresh
//! bucket), one `headlock kmip-server` process, the `headlock serve` nodes (each with
//! its own data directory, all reading one TOML `--config` file that names the
//! database, the KMIP server and, for the S3 node, the bucket), and this process, the
//! load generator (the CLI client for backups).
//!
//! 1. Rotations per second: `--clients` closed-loop clients, each with its own
//!    cluster and keep-alive digest connection, send `PUT .../encryptionKey` (201) for
//!    `--duration` seconds after `--warmup`: first against one node, then against two
//!    nodes on the same database and KMIP server, the same clients split between them.
//!    Every cluster's key must have changed at the end.
//! 2. `GET .../encryptionKey` per second (200, the same body every time), as the `api`
//!    benchmark loads it: `--connections` keep-alive connections, nonce reused; one
//!    node, then the connections split over two.
//! 3. Backup and restore of the same `--size-mib` input ([`bench::dataset`], half
//!    random, half JSON) with the real CLI through the API, to a node whose chunk
//!    store is the local directory and to one whose chunk store is S3 (moto), each on
//!    a fresh database; the restored trees must equal the input.
//!
//! For each measured window it prints the CPU seconds each process used (the nodes,
//! the KMIP server, PostgreSQL with its backends, moto, the client): on a small
//! machine they compete for the same cores, and that line says what the figure is
//! limited by. Every process it starts is killed at the end, on error, on panic and on
//! SIGINT/SIGTERM; PostgreSQL and moto are shared test services, stopped at the end
//! only when this run started them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::daemon::Daemon;
use bench::dataset::{self, Spec};
use bench::http::Connection;
use bench::load::{self, Client, Report, Window};
use bench::measure::{self, Measured};
use bench::process::{self, Store};
use bench::proctree::ProcTable;
use bench::rest::{Api, encryption_key_uri};
use bench::setup;
use bench::stats::ms;
use clap::Parser;

/// The user the benchmark creates.
const USERNAME: &str = "bench";
/// Time the load clients get to connect before the warm-up starts.
const CONNECT_DELAY: Duration = Duration::from_millis(100);
/// KMIP operations made less often than this per answer are not shown.
const MIN_KMIP_PER_ANSWER: f64 = 0.05;
/// Clock ticks per second of `/proc/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: u64 = 100;
/// How often a measured CLI command is polled (and the stop flag checked).
const POLL: Duration = Duration::from_millis(20);
/// Longer than a node trusts its read cache (headlock_service::cache::TTL, 1 s).
const CACHE_SETTLE: Duration = Duration::from_millis(1500);
/// Free space needed in input sizes: the input, the local chunk store, one restore.
const SPACE_FACTOR: u64 = 3;

/// Rotations and GETs on one node against two on one database; S3 against local chunks.
#[derive(Debug, Parser)]
#[command(name = "nodes", version)]
struct Args {
    /// Concurrent rotation clients, each rotating its own cluster (2 to 256).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(2..=256))]
    clients: u16,
    /// Measured seconds of each rotation load (0.5 to 600).
    #[arg(long, default_value_t = 10.0, value_parser = setup::seconds)]
    duration: f64,
    /// Keep-alive connections of the GET load (2 to 256).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(2..=256))]
    connections: u16,
    /// Measured seconds of each GET load (0.5 to 600).
    #[arg(long, default_value_t = 5.0, value_parser = setup::seconds)]
    get_duration: f64,
    /// Warm-up seconds before each measured load (0 to 600).
    #[arg(long, default_value_t = 1.0, value_parser = setup::seconds)]
    warmup: f64,
    /// Size of the backup input in MiB, half random and half JSON (16 to 65536).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=65_536))]
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
}

fn main() -> ExitCode {
    if let Some(code) = measure::wrapper_main() {
        return code;
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nodes benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.duration >= 0.5 && args.get_duration >= 0.5,
        "--duration and --get-duration must be at least 0.5 s"
    );
    let exe = std::env::current_exe().context("locating this executable")?;
    let bin = setup::headlock_bin(args.headlock.as_deref())?;
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let input_bytes = args.size_mib << 20;
    setup::ensure_free_space(&parent, input_bytes, SPACE_FACTOR)?;

    // The load generator's runtime (default: one worker per core, as the api benchmark).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let stop = measure::watch_signals(rt.handle()).context("watching SIGINT and SIGTERM")?;

    // Declared first, dropped last: stops the shared services after every database,
    // node and KMIP server is gone, and only those this run started.
    let services = Services::start()?;
    // Removed on drop: on return, error and panic (after the processes using it).
    let tmp = tempfile::Builder::new()
        .prefix("headlock-bench-nodes-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "nodes benchmark: {} ({cores} cores, {:.1} GiB RAM); PostgreSQL {}, moto {}, the KMIP server, the nodes and this load generator all run on this machine",
        bin.display(),
        mem_total_gib(),
        services.postgres.describe(),
        services.moto.describe(),
    );
    if cores <= 2 {
        println!(
            "  with {cores} cores every process below competes for the same CPUs: a second node cannot double anything here; the CPU lines show what limits each figure"
        );
    }

    let bench = Bench {
        bin,
        exe,
        tmp: tmp.path().to_path_buf(),
        stop,
        services,
        cores,
    };
    let kmip_dir = bench.tmp.join("kmip-server");
    let kmip = process::kmip_server(&bench.bin, &kmip_dir)?;
    println!(
        "  KMIP server: `headlock kmip-server` pid {} on {}",
        kmip.pid(),
        kmip.addr()
    );

    let kmip_log = || format!("the KMIP server's log ends with:\n{}", kmip.log_tail());
    let nodes = bench
        .nodes_part(&args, &kmip, &kmip_dir, &rt)
        .or_else(|e| bench.explain(e, kmip_log))?;
    let backups = bench
        .backup_part(&args, &kmip, &kmip_dir, &rt)
        .or_else(|e| bench.explain(e, kmip_log))?;
    print_summary(&args, &nodes, &backups);
    drop(kmip);
    rt.shutdown_background();
    Ok(())
}

/// Everything the parts share.
struct Bench {
    bin: PathBuf,
    exe: PathBuf,
    tmp: PathBuf,
    stop: Arc<AtomicBool>,
    services: Services,
    cores: usize,
}

/// One shared test service (PostgreSQL, moto): its postmaster or server pid when
/// known, and whether this run started it.
struct Service {
    name: &'static str,
    script: PathBuf,
    pid_file: PathBuf,
    /// Overridden by a variable pointing the tests at another server: no pid then.
    external: bool,
    started_here: bool,
}

impl Service {
    fn new(name: &'static str, script: &str, pid_file: &str, override_var: &str) -> Service {
        let root = testkit::repo_root();
        let state = std::env::var_os("HEADLOCK_TEST_SERVICES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/test-services"));
        let mut s = Service {
            name,
            script: root.join("scripts").join(script),
            pid_file: state.join(pid_file),
            external: std::env::var_os(override_var).is_some_and(|v| !v.is_empty()),
            started_here: false,
        };
        s.started_here = !s.external && s.pid().is_none();
        s
    }

    /// The server's pid, if it runs (from the script's pid file).
    fn pid(&self) -> Option<u32> {
        if self.external {
            return None;
        }
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    fn describe(&self) -> String {
        match (self.external, self.pid()) {
            (true, _) => format!("({} given by the environment, not measured)", self.name),
            (false, Some(pid)) => format!(
                "pid {pid} ({})",
                if self.started_here {
                    "started by this run"
                } else {
                    "already running, shared"
                }
            ),
            (false, None) => "(not running yet)".into(),
        }
    }
}

/// PostgreSQL and moto, each stopped on drop if this run started it.
struct Services {
    postgres: Service,
    moto: Service,
}

impl Services {
    /// Notes which services already run, then starts both (through testkit's first
    /// database and bucket, thrown away).
    fn start() -> anyhow::Result<Services> {
        let services = Services {
            postgres: Service::new(
                "PostgreSQL",
                "postgres.sh",
                "postgres.pid",
                testkit::POSTGRES_URL_ENV,
            ),
            moto: Service::new("moto", "moto.sh", "moto.pid", testkit::S3_ENDPOINT_VAR),
        };
        // Started now, so that their start-up (initdb, pip) is not in any figure.
        drop(
            testkit::PostgresDatabase::create()
                .context("starting PostgreSQL (scripts/postgres.sh)")?,
        );
        testkit::moto_bucket().context("starting moto (scripts/moto.sh)")?;
        Ok(services)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for s in [&self.postgres, &self.moto] {
            if s.started_here {
                let status = Command::new("bash")
                    .arg(&s.script)
                    .arg("stop")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if !status.is_ok_and(|s| s.success()) {
                    eprintln!(
                        "nodes benchmark: `{} stop` failed; stop {} by hand",
                        s.script.display(),
                        s.name
                    );
                }
            }
        }
    }
}

fn mem_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / (1 << 20) as f64)
}

/// A string as a TOML basic string (`"..."`), refusing control characters.
fn toml_string(s: &str) -> anyhow::Result<String> {
    ensure!(
        !s.chars().any(char::is_control),
        "a configuration value holds a control character"
    );
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn toml_path(p: &Path) -> anyhow::Result<String> {
    toml_string(
        p.to_str()
            .with_context(|| format!("{} is not UTF-8", p.display()))?,
    )
}

/// The S3 part of a node's configuration.
struct Bucket(testkit::S3Target);

/// One deployment: a database, a configuration file naming it, the KMIP server and
/// (for S3) a bucket, and a user. Nodes started from it share all of those.
struct Deployment {
    name: &'static str,
    config: PathBuf,
    key: String,
    // Dropped after the nodes (see `Part`): the database outlives its users.
    _database: testkit::PostgresDatabase,
}

impl Bench {
    /// `e` with the processes' logs as context, unless the run was interrupted (then
    /// the logs say nothing about it).
    fn explain<T>(&self, e: anyhow::Error, logs: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.check()?;
        Err(e.context(logs()))
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }

    /// A fresh database, a configuration file in `tmp/NAME.toml` (mode 0600: it holds
    /// the database URL and the S3 keys) and a `GLOBAL_OWNER` user.
    fn deployment(
        &self,
        name: &'static str,
        kmip: &Daemon,
        kmip_dir: &Path,
        bucket: Option<&Bucket>,
    ) -> anyhow::Result<Deployment> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let database =
            testkit::PostgresDatabase::create().context("creating a PostgreSQL database")?;
        let pki = kmip_server::pki::PkiPaths::in_dir(&kmip_dir.join("kmip"));
        let mut text = String::new();
        writeln!(text, "database_url = {}", toml_string(database.url())?)?;
        writeln!(text, "\n[kmip]")?;
        writeln!(
            text,
            "servers = [{}]",
            toml_string(&kmip.addr().to_string())?
        )?;
        writeln!(text, "ca_file = {}", toml_path(&pki.ca_cert)?)?;
        writeln!(text, "client_cert_file = {}", toml_path(&pki.client_cert)?)?;
        writeln!(text, "client_key_file = {}", toml_path(&pki.client_key)?)?;
        if let Some(Bucket(b)) = bucket {
            writeln!(text, "\n[s3]")?;
            writeln!(text, "bucket = {}", toml_string(&b.bucket)?)?;
            writeln!(text, "endpoint = {}", toml_string(&b.endpoint)?)?;
            writeln!(text, "region = {}", toml_string(&b.region)?)?;
            writeln!(text, "access_key_id = {}", toml_string(&b.access_key_id)?)?;
            writeln!(
                text,
                "secret_access_key = {}",
                toml_string(&b.secret_access_key)?
            )?;
            writeln!(text, "allow_http = true")?;
        }
        let config = self.tmp.join(format!("{name}.toml"));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&config)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("writing {}", config.display()))?;
        let key =
            process::create_user(&self.bin, Store::config(&config), USERNAME, "GLOBAL_OWNER")?;
        Ok(Deployment {
            name,
            config,
            key,
            _database: database,
        })
    }

    /// `headlock serve --config F --data-dir tmp/NAME --listen 127.0.0.1:0`.
    fn node(&self, deployment: &Deployment, name: &str) -> anyhow::Result<Daemon> {
        let data = self.tmp.join(name);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let node = process::serve(
            &self.bin,
            Store::config(&deployment.config).with_data_dir(&data),
            &format!("{name} (`headlock serve`, {})", deployment.name),
        )?;
        println!(
            "  {name}: `headlock serve` pid {} on {}",
            node.pid(),
            node.addr()
        );
        Ok(node)
    }
}

// ---------------------------------------------------------------------------------
// CPU accounting

/// A process whose CPU time is shown: a node, the KMIP server, PostgreSQL (with its
/// backends), moto, this process.
#[derive(Debug, Clone)]
struct Party {
    name: String,
    pid: Option<u32>,
    /// Count its descendants too (PostgreSQL's backends). Not for this process, whose
    /// descendants are the nodes and the KMIP server.
    tree: bool,
}

impl Party {
    fn process(name: impl Into<String>, pid: u32) -> Party {
        Party {
            name: name.into(),
            pid: Some(pid),
            tree: false,
        }
    }

    fn tree(name: impl Into<String>, pid: Option<u32>) -> Party {
        Party {
            name: name.into(),
            pid,
            tree: true,
        }
    }
}

/// What is sampled at both ends of a measured window.
#[derive(Debug, Clone, Default)]
struct Sample {
    /// CPU time of each party (`None`: unknown or not running).
    cpu: Vec<Option<Duration>>,
    /// Pressure stall totals (`/proc/pressure/{cpu,io}`, "some" line): time during
    /// which at least one task waited for a CPU, and for I/O.
    stall_cpu: Option<Duration>,
    stall_io: Option<Duration>,
    /// Busy time of all the machine's CPUs (`/proc/stat`), whoever used them.
    machine_busy: Option<Duration>,
}

/// Busy time of all CPUs since boot, from the `cpu` line of `/proc/stat`: user, nice,
/// system, irq, softirq and steal (everything but idle and iowait).
fn machine_busy() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let ticks = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied())
        .sum::<Option<u64>>()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// The `total=` microseconds of the "some" line of `/proc/pressure/NAME`.
fn pressure_some(name: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{name}")).ok()?;
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let total = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?;
    Some(Duration::from_micros(total.parse().ok()?))
}

fn sample_now(parties: &[Party]) -> Sample {
    let table = if parties.iter().any(|p| p.tree) {
        ProcTable::read().ok()
    } else {
        None
    };
    let cpu = parties
        .iter()
        .map(|p| {
            let pid = p.pid?;
            if p.tree {
                table.as_ref()?.tree_cpu(pid)
            } else {
                measure::proc_cpu(pid).ok()
            }
        })
        .collect();
    Sample {
        cpu,
        stall_cpu: pressure_some("cpu"),
        stall_io: pressure_some("io"),
        machine_busy: machine_busy(),
    }
}

/// Two lines: `CPU s: NAME X.X, ...; total X.X of Y.Y (N cores x W s), Z% busy`, and
/// the share of the window with a task waiting for a CPU and for I/O.
fn cpu_lines(
    parties: &[Party],
    before: &Sample,
    after: &Sample,
    extra: &[(&str, Duration)],
    wall: Duration,
    cores: usize,
) -> String {
    let mut total = Duration::ZERO;
    let mut parts = Vec::new();
    for (p, (b, a)) in parties.iter().zip(before.cpu.iter().zip(&after.cpu)) {
        match (b, a) {
            (Some(b), Some(a)) => {
                let d = a.saturating_sub(*b);
                total += d;
                parts.push(format!("{} {:.1}", p.name, d.as_secs_f64()));
            }
            _ => parts.push(format!("{} n/a", p.name)),
        }
    }
    for (name, d) in extra {
        total += *d;
        parts.push(format!("{name} {:.1}", d.as_secs_f64()));
    }
    // What the rest of the machine used meanwhile (other users' work, the kernel's
    // threads): the machine's busy time less everything above.
    if let (Some(b), Some(a)) = (before.machine_busy, after.machine_busy) {
        let others = a.saturating_sub(b).saturating_sub(total);
        total += others;
        parts.push(format!("other processes {:.1}", others.as_secs_f64()));
    }
    let secs = wall.as_secs_f64().max(1e-9);
    let available = secs * cores.max(1) as f64;
    let share = |b: Option<Duration>, a: Option<Duration>| match (b, a) {
        (Some(b), Some(a)) => format!("{:.0}%", 100.0 * a.saturating_sub(b).as_secs_f64() / secs),
        _ => "n/a".into(),
    };
    format!(
        "CPU s: {} = {:.1} of {:.1} ({cores} cores x {:.1} s): {:.0}% busy\n\
         {:13}share of the window with a task waiting (PSI \"some\"): for a CPU {}, for I/O {}",
        parts.join(", "),
        total.as_secs_f64(),
        available,
        secs,
        100.0 * total.as_secs_f64() / available,
        "",
        share(before.stall_cpu, after.stall_cpu),
        share(before.stall_io, after.stall_io),
    )
}

/// Samples at the start and the end of `window`'s measured part: the parties' CPU
/// and the nodes' KMIP request times.
async fn sample_over(
    parties: Vec<Party>,
    nodes: Vec<SocketAddr>,
    window: Window,
) -> ((Sample, KmipTimes), (Sample, KmipTimes)) {
    let now = async |parties: Vec<Party>| {
        let sample = tokio::task::spawn_blocking(move || sample_now(&parties))
            .await
            .unwrap_or_default();
        (sample, kmip_times(&nodes).await)
    };
    tokio::time::sleep_until(window.measure_from.into()).await;
    let before = now(parties.clone()).await;
    tokio::time::sleep_until(window.end.into()).await;
    let after = now(parties).await;
    (before, after)
}

/// Per KMIP operation, summed over the nodes: (requests, seconds), from the
/// `kmip_request_duration_seconds` histogram of each node's `/metrics`.
type KmipTimes = BTreeMap<String, (f64, f64)>;

/// Scrapes `/metrics` of every node; a node that does not answer adds nothing.
async fn kmip_times(nodes: &[SocketAddr]) -> KmipTimes {
    let mut times = KmipTimes::new();
    for &addr in nodes {
        let Ok(mut conn) = Connection::connect(addr).await else {
            continue;
        };
        let Ok(r) = conn.send("GET", "/metrics", &[], b"").await else {
            continue;
        };
        if r.status == 200 {
            add_kmip_times(&mut times, &String::from_utf8_lossy(&r.body));
        }
    }
    times
}

/// Adds the `_count` and `_sum` samples of `kmip_request_duration_seconds` in a
/// Prometheus text exposition to `times`, by their `operation` label.
fn add_kmip_times(times: &mut KmipTimes, text: &str) {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("kmip_request_duration_seconds_") else {
            continue;
        };
        let (is_count, rest) = match (rest.strip_prefix("count{"), rest.strip_prefix("sum{")) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => continue,
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(op) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("operation=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = times.entry(op.to_string()).or_default();
        if is_count {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
}

/// `KMIP (as the nodes time it, per rotation): Create 1.00 x 3.2 ms, ...`, or `None`
/// when no KMIP request was made in the window.
fn kmip_line(before: &KmipTimes, after: &KmipTimes, per: u64) -> Option<String> {
    let mut parts = Vec::new();
    let mut total = 0.0;
    for (op, (n, secs)) in after {
        let (n0, s0) = before.get(op).copied().unwrap_or_default();
        let (dn, ds) = (n - n0, secs - s0);
        // Leaves out what is not part of the answers (the nodes' periodic probes).
        if dn >= 1.0 && dn / per.max(1) as f64 >= MIN_KMIP_PER_ANSWER {
            total += ds;
            parts.push(format!(
                "{op} {:.2} x {:.2} ms",
                dn / per.max(1) as f64,
                ds / dn * 1e3
            ));
        }
    }
    (!parts.is_empty()).then(|| {
        format!(
            "KMIP requests per answer (count x mean time, as the nodes time them): {}; {:.2} ms of KMIP time per answer",
            parts.join(", "),
            total / per.max(1) as f64 * 1e3
        )
    })
}

// ---------------------------------------------------------------------------------
// Parts 1 and 2: rotations and GETs, one node against two

/// One load's figures.
struct Figure {
    per_second: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    /// Per node, requests per second.
    per_node: Vec<f64>,
}

/// What parts 1 and 2 measured: (one node, two nodes).
struct NodesResult {
    rotations: (Figure, Figure),
    gets: (Figure, Figure),
}

impl Bench {
    fn parties(&self, nodes: &[Daemon], kmip: &Daemon, with_moto: bool) -> Vec<Party> {
        let mut parties: Vec<Party> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Party::process(format!("node {}", i + 1), n.pid()))
            .collect();
        parties.push(Party::process("KMIP server", kmip.pid()));
        parties.push(Party::tree("PostgreSQL", self.services.postgres.pid()));
        if with_moto {
            parties.push(Party::tree("moto", self.services.moto.pid()));
        }
        parties
    }

    /// Runs one load on `nodes` (client i on node i mod n) and prints its line and
    /// its CPU line.
    #[allow(clippy::too_many_arguments)]
    fn measure_load(
        &self,
        rt: &tokio::runtime::Runtime,
        label: &str,
        unit: &str,
        clients: &[Client],
        nodes: &[Daemon],
        kmip: &Daemon,
        key: &str,
        warmup: f64,
        duration: f64,
    ) -> anyhow::Result<Figure> {
        self.check()?;
        let mut parties = self.parties(nodes, kmip, false);
        parties.push(Party::process("load generator", std::process::id()));
        let window = Window::after(
            CONNECT_DELAY,
            Duration::from_secs_f64(warmup),
            Duration::from_secs_f64(duration),
        );
        let addrs = nodes.iter().map(Daemon::addr).collect();
        let sampler = rt.spawn(sample_over(parties.clone(), addrs, window));
        let report = rt.block_on(load::run(
            clients,
            USERNAME,
            key,
            &window,
            Some(self.stop.clone()),
        ));
        let mut report: Report = match report {
            Ok(r) => r,
            Err(e) => {
                sampler.abort();
                return self.explain(e.into(), || node_logs(nodes));
            }
        };
        let ((before, kmip_before), (after, kmip_after)) =
            rt.block_on(sampler).context("the CPU sampler panicked")?;
        let mut per_node = vec![0u64; nodes.len()];
        for (i, n) in report.per_client.iter().enumerate() {
            per_node[i % nodes.len()] += n;
        }
        let secs = window.measured().as_secs_f64();
        let figure = Figure {
            per_second: report.per_second(&window),
            p50: report.samples.percentile(50.0),
            p99: report.samples.percentile(99.0),
            per_node: per_node.iter().map(|&n| n as f64 / secs).collect(),
        };
        let split = if nodes.len() > 1 {
            let each: Vec<String> = figure
                .per_node
                .iter()
                .enumerate()
                .map(|(i, r)| format!("node {} {r:.0}", i + 1))
                .collect();
            format!(" = {}", each.join(" + "))
        } else {
            String::new()
        };
        println!(
            "  {label:<10} {:>9.1} {unit}/s{split}  p50 {}  p99 {}  ({} answers, {} challenges, {} stale)",
            figure.per_second,
            ms(figure.p50),
            ms(figure.p99),
            report.ok,
            report.challenges,
            report.stale
        );
        println!(
            "             {}",
            cpu_lines(
                &parties,
                &before,
                &after,
                &[],
                window.measured(),
                self.cores
            )
        );
        if let Some(line) = kmip_line(&kmip_before, &kmip_after, report.ok) {
            println!("             {line}");
        }
        Ok(figure)
    }

    fn nodes_part(
        &self,
        args: &Args,
        kmip: &Daemon,
        kmip_dir: &Path,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<NodesResult> {
        println!(
            "\nshared database: one node, then two nodes on the same PostgreSQL database and KMIP server"
        );
        let deployment = self.deployment("shared", kmip, kmip_dir, None)?;
        let mut nodes = vec![self.node(&deployment, "node1")?];
        let key = deployment.key.as_str();

        // One cluster per rotation client; the first one's key is also what the GET
        // load reads.
        let clusters = rt
            .block_on(async {
                let mut api = Api::connect(nodes[0].addr(), USERNAME, key).await?;
                let group = api.create_group("bench-nodes").await?;
                let mut clusters = Vec::new();
                for i in 0..args.clients {
                    let c = api.encrypted_replica_set(&group, &format!("rs{i}")).await?;
                    clusters.push((group.clone(), c));
                }
                anyhow::Ok(clusters)
            })
            .or_else(|e| self.explain(e, || node_logs(&nodes)))?;
        let uris: Vec<String> = clusters
            .iter()
            .map(|(g, c)| encryption_key_uri(g, c))
            .collect();
        let keys_before = rt.block_on(current_keys(nodes[0].addr(), key, &uris))?;

        let rotation_clients = |nodes: &[Daemon]| -> Vec<Client> {
            uris.iter()
                .enumerate()
                .map(|(i, uri)| Client::new(nodes[i % nodes.len()].addr(), "PUT", uri.clone(), 201))
                .collect()
        };
        let get_clients = |nodes: &[Daemon]| -> anyhow::Result<Vec<Client>> {
            // A node sees another node's writes (the rotations just made) once its read
            // cache entry expires (1 s): wait that out, so every answer of the load is
            // the body read now.
            std::thread::sleep(CACHE_SETTLE);
            // Each node's body (its links name the node's own address).
            let bodies = nodes
                .iter()
                .map(|n| rt.block_on(get_body(n.addr(), key, &uris[0])))
                .collect::<anyhow::Result<Vec<Arc<[u8]>>>>()?;
            Ok((0..usize::from(args.connections))
                .map(|i| {
                    let n = i % nodes.len();
                    Client::new(nodes[n].addr(), "GET", uris[0].clone(), 200)
                        .with_body(bodies[n].clone())
                })
                .collect())
        };
        let rotations = |label: &str, nodes: &[Daemon]| {
            let clients = rotation_clients(nodes);
            self.measure_load(
                rt,
                label,
                "rotations",
                &clients,
                nodes,
                kmip,
                key,
                args.warmup,
                args.duration,
            )
        };
        let gets = |label: &str, nodes: &[Daemon]| {
            let clients = get_clients(nodes)?;
            self.measure_load(
                rt,
                label,
                "requests",
                &clients,
                nodes,
                kmip,
                key,
                args.warmup,
                args.get_duration,
            )
        };

        println!(
            "\n1. PUT encryptionKey (rotation, digest), {} clients each rotating its own cluster, {:.1} s warm-up, {:.1} s measured",
            args.clients, args.warmup, args.duration
        );
        let rot1 = rotations("one node", &nodes)?;
        println!(
            "\n2. GET encryptionKey (digest, nonce reused), {} keep-alive connections, {:.1} s warm-up, {:.1} s measured",
            args.connections, args.warmup, args.get_duration
        );
        let get1 = gets("one node", &nodes)?;

        println!("\nsecond node on the same database and KMIP server:");
        nodes.push(self.node(&deployment, "node2")?);
        println!(
            "\n1. PUT encryptionKey, the same {} clients split over two nodes",
            args.clients
        );
        let rot2 = rotations("two nodes", &nodes)?;
        println!(
            "\n2. GET encryptionKey, the same {} connections split over two nodes",
            args.connections
        );
        let get2 = gets("two nodes", &nodes)?;

        // Every cluster was rotated, whichever node did it, and both nodes agree.
        for node in &nodes {
            let after = rt.block_on(current_keys(node.addr(), key, &uris))?;
            for ((uri, b), a) in uris.iter().zip(&keys_before).zip(&after) {
                ensure!(a != b, "{uri}: the key did not change on {}", node.addr());
            }
        }
        println!("\n  every cluster's key changed; both nodes show the same current keys");
        // The history the loads left (the two-node load ran on the longer one).
        let history = rt.block_on(async {
            let mut api = Api::connect(nodes[0].addr(), USERNAME, key).await?;
            let uri = format!("{}s?itemsPerPage=1", uris[0]);
            anyhow::Ok(api.call("GET", &uri, "", 200).await?["totalCount"].as_u64())
        })?;
        if let Some(n) = history {
            println!("  cluster rs0 has {n} keys in its history after both loads");
        }
        drop(nodes);
        drop(deployment);
        Ok(NodesResult {
            rotations: (rot1, rot2),
            gets: (get1, get2),
        })
    }
}

/// The last lines of each node's log, for error messages.
fn node_logs(nodes: &[Daemon]) -> String {
    let mut s = String::new();
    for n in nodes {
        let _ = write!(
            s,
            "\n{} (pid {}) log ends with:\n{}\n",
            n.name(),
            n.pid(),
            n.log_tail()
        );
    }
    s
}

/// The current `encryptionKeyUUID` of each URI.
async fn current_keys(addr: SocketAddr, key: &str, uris: &[String]) -> anyhow::Result<Vec<String>> {
    let mut api = Api::connect(addr, USERNAME, key).await?;
    let mut keys = Vec::with_capacity(uris.len());
    for uri in uris {
        keys.push(
            api.call_for("GET", uri, "", 200, "encryptionKeyUUID")
                .await?,
        );
    }
    Ok(keys)
}

/// The body of one GET.
async fn get_body(addr: SocketAddr, key: &str, uri: &str) -> anyhow::Result<Arc<[u8]>> {
    let mut api = Api::connect(addr, USERNAME, key).await?;
    Ok(api.raw("GET", uri, "", 200).await?.body.into())
}

// ---------------------------------------------------------------------------------
// Part 3: backup and restore, local directory against S3

/// One chunk store's backup and restore.
struct BackupFigure {
    backup: Duration,
    restore: Duration,
}

/// What part 3 measured: (local directory, S3).
struct BackupResult {
    bytes: u64,
    local: BackupFigure,
    s3: BackupFigure,
}

impl Bench {
    fn backup_part(
        &self,
        args: &Args,
        kmip: &Daemon,
        kmip_dir: &Path,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<BackupResult> {
        self.check()?;
        let input = self.tmp.join("input");
        let t = Instant::now();
        let stop = self.stop.clone();
        let summary =
            dataset::generate(&input, &Spec::new(args.size_mib << 20, args.seed), &|| {
                stop.load(Ordering::SeqCst)
            })
            .context("generating the input")?;
        println!(
            "\n3. backup and restore with the CLI through the API: {} bytes in {} files ({} MiB random, {} MiB JSON, seed {}), written in {:.1} s",
            summary.bytes,
            summary.files,
            summary.random_bytes >> 20,
            summary.json_bytes >> 20,
            args.seed,
            t.elapsed().as_secs_f64()
        );
        let local = self.backup_restore(&input, summary.bytes, kmip, kmip_dir, None, rt)?;
        let bucket = Bucket(testkit::moto_bucket().context("creating a bucket on moto")?);
        let s3 = self.backup_restore(&input, summary.bytes, kmip, kmip_dir, Some(&bucket), rt)?;
        Ok(BackupResult {
            bytes: summary.bytes,
            local,
            s3,
        })
    }

    /// A fresh deployment (database, and the bucket when given) with one node: one
    /// backup and one restore, timed, the restore compared with the input.
    fn backup_restore(
        &self,
        input: &Path,
        bytes: u64,
        kmip: &Daemon,
        kmip_dir: &Path,
        bucket: Option<&Bucket>,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<BackupFigure> {
        self.check()?;
        let (name, store) = match bucket {
            None => ("local", "chunks in the node's data directory".to_string()),
            Some(Bucket(b)) => (
                "s3",
                format!("chunks in bucket {} on moto at {}", b.bucket, b.endpoint),
            ),
        };
        println!("\n  {name}: {store}, a fresh database");
        let deployment = self.deployment(name, kmip, kmip_dir, bucket)?;
        let node = self.node(&deployment, &format!("node-{name}"))?;
        let nodes = std::slice::from_ref(&node);
        let result =
            self.backup_restore_on(input, bytes, kmip, &deployment, &node, bucket.is_some(), rt);
        let figure = result.or_else(|e| self.explain(e, || node_logs(nodes)))?;
        drop(node);
        drop(deployment);
        Ok(figure)
    }

    #[allow(clippy::too_many_arguments)]
    fn backup_restore_on(
        &self,
        input: &Path,
        bytes: u64,
        kmip: &Daemon,
        deployment: &Deployment,
        node: &Daemon,
        s3: bool,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<BackupFigure> {
        let (group, cluster) = rt.block_on(async {
            let mut api = Api::connect(node.addr(), USERNAME, &deployment.key).await?;
            api.encrypted_cluster("bench-backup", "rs0").await
        })?;
        let cli = |sub: &str| {
            process::cli(
                &self.bin,
                node.addr(),
                USERNAME,
                &deployment.key,
                sub,
                &group,
                &cluster,
            )
        };
        let mut parties = self.parties(std::slice::from_ref(node), kmip, s3);
        parties[0].name = "node".into();
        let phase = |label: &str, cmd: Measured| -> anyhow::Result<(Duration, String)> {
            self.check()?;
            nix::unistd::sync();
            let before = sample_now(&parties);
            let stop = self.stop.clone();
            let out = cmd.run(&self.exe, POLL, &mut || !stop.load(Ordering::SeqCst))?;
            let after = sample_now(&parties);
            ensure!(
                out.status.success(),
                "{} failed ({}): {}",
                cmd.name(),
                out.status,
                out.stderr
            );
            let wall = out.usage.wall;
            println!(
                "    {label:<8} {:>8.1} MB/s  {:>6.2} s",
                bytes as f64 / 1e6 / wall.as_secs_f64().max(1e-9),
                wall.as_secs_f64()
            );
            println!(
                "             {}",
                cpu_lines(
                    &parties,
                    &before,
                    &after,
                    &[("CLI client", out.usage.cpu())],
                    wall,
                    self.cores
                )
            );
            Ok((
                wall,
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            ))
        };
        let (backup, snapshot) = phase("backup", cli("backup").arg(input))?;
        ensure!(
            snapshot.len() == 24 && snapshot.bytes().all(|b| b.is_ascii_hexdigit()),
            "`headlock backup` printed {snapshot:?} instead of a snapshot id"
        );
        let out_dir = self.tmp.join(format!("restore-{}", deployment.name));
        let (restore, _) = phase(
            "restore",
            cli("restore")
                .args(["--snapshot", &snapshot, "--target"])
                .arg(&out_dir),
        )?;
        let n = dataset::compare_trees(input, &out_dir)
            .with_context(|| format!("the restore in {}", out_dir.display()))?;
        println!("    restored tree identical to the input ({n} bytes compared)");
        std::fs::remove_dir_all(&out_dir)
            .with_context(|| format!("removing {}", out_dir.display()))?;
        Ok(BackupFigure { backup, restore })
    }
}

// ---------------------------------------------------------------------------------
// Summary

fn print_summary(args: &Args, nodes: &NodesResult, backups: &BackupResult) {
    println!(
        "\nsummary (one run, one machine; every figure above shares its CPUs with PostgreSQL, the KMIP server and the client)"
    );
    println!(
        "  {:<44} {:>11} {:>11} {:>9}",
        "", "one node", "two nodes", "two/one"
    );
    let row = |label: String, (one, two): &(Figure, Figure)| {
        println!(
            "  {label:<44} {:>11.1} {:>11.1} {:>9.2}",
            one.per_second,
            two.per_second,
            two.per_second / one.per_second.max(1e-9)
        );
    };
    row(
        format!("rotations/s ({} clients)", args.clients),
        &nodes.rotations,
    );
    row(
        format!("GET encryptionKey/s ({} connections)", args.connections),
        &nodes.gets,
    );
    let mbps = |d: Duration| backups.bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    println!(
        "\n  {:<44} {:>11} {:>11} {:>9}",
        "", "local dir", "S3 (moto)", "S3/local"
    );
    for (label, l, s) in [
        ("backup MB/s", backups.local.backup, backups.s3.backup),
        ("restore MB/s", backups.local.restore, backups.s3.restore),
    ] {
        println!(
            "  {:<44} {:>11.1} {:>11.1} {:>9.2}",
            format!("{label} ({} MiB)", args.size_mib),
            mbps(l),
            mbps(s),
            mbps(s) / mbps(l).max(1e-9)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kmip_histograms_of_two_nodes() {
        let node = r#"# TYPE kmip_request_duration_seconds histogram
kmip_request_duration_seconds_bucket{server="127.0.0.1:1",operation="Create",le="0.01"} 3
kmip_request_duration_seconds_sum{server="127.0.0.1:1",operation="Create"} 0.03
kmip_request_duration_seconds_count{server="127.0.0.1:1",operation="Create"} 3
kmip_request_duration_seconds_sum{server="127.0.0.1:1",operation="Activate"} 0.006
kmip_request_duration_seconds_count{server="127.0.0.1:1",operation="Activate"} 3
kmip_requests_total{server="127.0.0.1:1",operation="Create",outcome="ok"} 3
"#;
        let mut times = KmipTimes::new();
        add_kmip_times(&mut times, node);
        add_kmip_times(&mut times, node);
        assert_eq!(times["Create"], (6.0, 0.06));
        assert_eq!(times["Activate"], (6.0, 0.012));
        let line = kmip_line(&KmipTimes::new(), &times, 6).unwrap();
        assert!(
            line.contains("Activate 1.00 x 2.00 ms, Create 1.00 x 10.00 ms"),
            "{line}"
        );
        assert!(line.contains("12.00 ms of KMIP time per answer"), "{line}");
        assert_eq!(kmip_line(&times, &times, 6), None);
    }

    #[test]
    fn rejects_control_characters_in_toml_strings() {
        assert_eq!(toml_string(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert!(toml_string("a\nb").is_err());
    }
}
