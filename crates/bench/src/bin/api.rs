//! `api`: the API benchmarks of issue 3, against the real `headlock` binary.
//!
//! ```text
//! cargo build --release -p headlock
//! cargo run --release -p bench --bin api [-- --connections 4 --duration 5 --warmup 1 --rotations 200]
//! ```
//!
//! 1. GET encryptionKey, requests per second with HTTP Digest (MD5, the nonce reused
//!    with an increasing `nc` on each kept-alive connection, as curl does), against a
//!    bare axum handler in this process serving the same JSON bytes, with the same
//!    client, the same number of connections and the same duration, in the same run.
//!    Target: headlock at least half the requests/s of the bare handler.
//! 2. PUT encryptionKey (rotation) with the embedded KMIP server: N sequential
//!    rotations of one cluster, p50/p99/max, and the first 50 against the last 50.
//!    Target: p99 under 50 ms, flat as rotations accumulate.
//!
//! It builds nothing: it runs the `headlock` next to its own executable
//! (`target/release/headlock`) or the one given with `--headlock`, in a temporary
//! data directory on loopback ports, and kills it at the end (or on any error or
//! panic). Every response must be 200 (201 for PUT); the only 401s allowed are the
//! digest challenges (first nonce, stale nonces), which are counted. Anything else
//! aborts the run with the status and body.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bench::digest::DigestClient;
use bench::http::Connection;
use bench::process::{self, Served};
use bench::stats::{Samples, ms};
use clap::Parser;
use serde_json::Value;
use tokio::task::JoinSet;

/// Most time one request may take before the run is aborted.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The user the benchmark creates.
const USERNAME: &str = "bench";
/// Rotations in each of the "first" and "last" windows.
const WINDOW: usize = 50;

/// GET encryptionKey requests/s (digest) against bare axum, and rotation latency.
#[derive(Debug, Parser)]
#[command(name = "api", version)]
struct Args {
    /// Concurrent keep-alive connections of the GET load (1 to 256).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Measured seconds of the GET load, per server (0.1 to 600).
    #[arg(long, default_value_t = 5.0, value_parser = seconds)]
    duration: f64,
    /// Warm-up seconds before each measured GET load (0 to 600).
    #[arg(long, default_value_t = 1.0, value_parser = seconds)]
    warmup: f64,
    /// Sequential rotations (PUT encryptionKey) to time (1 to 100000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rotations: u32,
    /// The headlock binary (default: `headlock` next to this executable).
    #[arg(long)]
    headlock: Option<PathBuf>,
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=600.0).contains(&v) {
        return Err("must be between 0 and 600 seconds".into());
    }
    Ok(v)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api benchmark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.duration >= 0.1, "--duration must be at least 0.1 s");
    let bin = match &args.headlock {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("headlock"),
    };
    if !bin.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p headlock` (or pass --headlock PATH)",
            bin.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("headlock-bench-")
        .tempdir()
        .context("creating a temporary data directory")?;
    let key = process::create_user(&bin, dir.path(), USERNAME, "GLOBAL_OWNER")?;
    // Killed on drop: on return, on error and on panic (unwinding).
    let server = Served::start(&bin, dir.path())?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "headlock API benchmark: {} (pid {}, embedded KMIP server) on {}; {cores} cores",
        bin.display(),
        server.pid(),
        server.addr()
    );

    // The client (load generator) and the bare axum server run on separate runtimes,
    // as the client and headlock run in separate processes.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let peer_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the bare axum runtime")?;
    let result = client_rt.block_on(bench(&args, &server, &key, &peer_rt));
    peer_rt.shutdown_background();
    result.with_context(|| format!("headlock's log ends with:\n{}", server.log_tail()))
}

async fn bench(
    args: &Args,
    server: &Served,
    key: &str,
    peer_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let addr = server.addr();
    let mut conn = Connection::connect(addr).await?;
    let mut digest = DigestClient::new(USERNAME, key);

    let group = call(
        &mut conn,
        &mut digest,
        "POST",
        "/api/public/v1.0/groups",
        r#"{"name":"bench"}"#,
        201,
    )
    .await?;
    let group = id_of(&group)?;
    let cluster = call(
        &mut conn,
        &mut digest,
        "POST",
        &format!("/api/public/v1.0/groups/{group}/clusters"),
        r#"{"clusterName":"rs0","typeName":"REPLICA_SET","replicaSetName":"rs0"}"#,
        201,
    )
    .await?;
    let cluster = id_of(&cluster)?;
    call(
        &mut conn,
        &mut digest,
        "PATCH",
        &format!("/api/public/v1.0/groups/{group}/backupConfigs/{cluster}"),
        r#"{"encryptionEnabled":true}"#,
        200,
    )
    .await?;
    let uri = format!("/api/public/v1.0/groups/{group}/backupConfigs/{cluster}/encryptionKey");
    let ex = digest.send(&mut conn, "GET", &uri, &[], b"").await?;
    ensure!(
        ex.response.status == 200,
        "GET {uri}: {}",
        describe(&ex.response)
    );
    let body: Arc<[u8]> = ex.response.body.into();
    let first_key = key_id(&body)?;

    let peer = start_bare_axum(peer_rt, body.clone()).await?;

    println!(
        "\nGET encryptionKey ({} bytes of JSON), {} connections, {:.1} s warm-up, {:.1} s measured, one client",
        body.len(),
        args.connections,
        args.warmup,
        args.duration
    );
    let load = Load {
        uri: uri.clone(),
        connections: args.connections.into(),
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        expected: body.clone(),
    };
    let mut bare = load.run(peer, None).await.context("load on bare axum")?;
    let mut hl = load
        .run(addr, Some((USERNAME.to_string(), key.to_string())))
        .await
        .context("load on headlock")?;
    let (bare_rps, hl_rps) = (bare.per_second(load.duration), hl.per_second(load.duration));
    println!(
        "  bare axum (same bytes, no auth)     {:>9.0} req/s  p50 {}  p99 {}  ({} responses, 0 errors)",
        bare_rps,
        ms(bare.samples.percentile(50.0)),
        ms(bare.samples.percentile(99.0)),
        bare.ok
    );
    println!(
        "  headlock (digest MD5, nonce reused) {:>9.0} req/s  p50 {}  p99 {}  ({} responses, 0 errors, {} challenges, {} stale)",
        hl_rps,
        ms(hl.samples.percentile(50.0)),
        ms(hl.samples.percentile(99.0)),
        hl.ok,
        hl.challenges,
        hl.stale
    );
    let ratio = hl_rps / bare_rps;
    println!(
        "  ratio headlock / bare axum          {ratio:>9.2}        target >= 0.50: {}",
        if ratio >= 0.5 { "met" } else { "MISSED" }
    );

    println!(
        "\nPUT encryptionKey (rotation), {} sequential requests on one connection, embedded KMIP server",
        args.rotations
    );
    let mut all = Samples::with_capacity(args.rotations as usize);
    let mut timeline = Vec::with_capacity(args.rotations as usize);
    let (mut challenges, mut stale) = (0, 0);
    for i in 0..args.rotations {
        let ex = tokio::time::timeout(
            REQUEST_TIMEOUT,
            digest.send(&mut conn, "PUT", &uri, &[], b""),
        )
        .await
        .with_context(|| format!("rotation {} took longer than {REQUEST_TIMEOUT:?}", i + 1))??;
        ensure!(
            ex.response.status == 201,
            "rotation {} (PUT {uri}): {}",
            i + 1,
            describe(&ex.response)
        );
        challenges += ex.challenges;
        stale += ex.stale;
        all.push(ex.elapsed);
        timeline.push(ex.elapsed);
        if !conn.is_open() {
            conn = Connection::connect(addr).await?;
        }
    }
    let ex = digest.send(&mut conn, "GET", &uri, &[], b"").await?;
    ensure!(
        ex.response.status == 200,
        "GET {uri} after the rotations: {}",
        describe(&ex.response)
    );
    let last_key = key_id(&ex.response.body)?;
    ensure!(
        last_key != first_key,
        "the key did not change after {} rotations",
        args.rotations
    );

    let p99 = all.percentile(99.0);
    println!(
        "  all {:<5}  p50 {}  p99 {}  max {}  ({challenges} extra challenges, {stale} stale)   target p99 < 50 ms: {}",
        all.len(),
        ms(all.percentile(50.0)),
        ms(p99),
        ms(all.max()),
        if p99.is_some_and(|p| p < Duration::from_millis(50)) {
            "met"
        } else {
            "MISSED"
        }
    );
    let n = timeline.len();
    let w = WINDOW.min(n);
    for (label, range) in [("first", 0..w), ("last ", n - w..n)] {
        let mut s = Samples::with_capacity(w);
        for d in &timeline[range.clone()] {
            s.push(*d);
        }
        println!(
            "  {label} {w:<3} p50 {}  p99 {}  (rotations {}..={})",
            ms(s.percentile(50.0)),
            ms(s.percentile(99.0)),
            range.start + 1,
            range.end
        );
    }
    Ok(())
}

/// One digest request that must answer `status`; returns the JSON body.
async fn call(
    conn: &mut Connection,
    digest: &mut DigestClient,
    method: &str,
    uri: &str,
    body: &str,
    status: u16,
) -> anyhow::Result<Value> {
    let ex = digest
        .send(
            conn,
            method,
            uri,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await?;
    ensure!(
        ex.response.status == status,
        "{method} {uri}: {}",
        describe(&ex.response)
    );
    serde_json::from_slice(&ex.response.body)
        .with_context(|| format!("{method} {uri}: the body is not JSON"))
}

fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no \"id\" in {v}"))
}

fn key_id(body: &[u8]) -> anyhow::Result<String> {
    let v: Value = serde_json::from_slice(body).context("the encryptionKey body is not JSON")?;
    v["encryptionKeyUUID"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no \"encryptionKeyUUID\" in {v}"))
}

/// `status` and the start of the body, for error messages.
fn describe(r: &bench::http::Response) -> String {
    let body = String::from_utf8_lossy(&r.body);
    let cut: String = body.chars().take(400).collect();
    format!("answered {} {cut}", r.status)
}

/// Starts the peer: a bare axum server whose one handler (same route shape as
/// headlock's) returns `body` as `application/json`.
async fn start_bare_axum(
    rt: &tokio::runtime::Runtime,
    body: Arc<[u8]>,
) -> anyhow::Result<SocketAddr> {
    use axum::body::Bytes;
    use axum::http::header::CONTENT_TYPE;
    let bytes = Bytes::from(body.to_vec());
    let app = axum::Router::new().route(
        "/api/public/v1.0/groups/{group}/backupConfigs/{cluster}/encryptionKey",
        axum::routing::get(move || {
            let bytes = bytes.clone();
            async move { ([(CONTENT_TYPE, "application/json")], bytes) }
        }),
    );
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the bare axum server")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app).await
    });
    Ok(addr)
}

/// One GET load: the same for both servers.
struct Load {
    uri: String,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    expected: Arc<[u8]>,
}

/// What one load measured.
#[derive(Default)]
struct LoadReport {
    /// 200s completed inside the measured window.
    ok: u64,
    /// Their round-trip times.
    samples: Samples,
    /// 401 round trips (first nonce per connection, stale nonces), whole run.
    challenges: u64,
    /// How many of them were stale.
    stale: u64,
}

impl LoadReport {
    fn per_second(&self, d: Duration) -> f64 {
        self.ok as f64 / d.as_secs_f64()
    }
}

impl Load {
    /// Runs `connections` clients on `addr` for warm-up plus duration; with
    /// `credentials`, each does digest as curl does on one connection.
    async fn run(
        &self,
        addr: SocketAddr,
        credentials: Option<(String, String)>,
    ) -> anyhow::Result<LoadReport> {
        let start = Instant::now() + Duration::from_millis(50);
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let mut tasks = JoinSet::new();
        for _ in 0..self.connections {
            let uri = self.uri.clone();
            let expected = self.expected.clone();
            let credentials = credentials.clone();
            let per_conn = (self.duration.as_secs_f64() * 50_000.0) as usize;
            tasks.spawn(async move {
                let mut report = LoadReport {
                    samples: Samples::with_capacity(per_conn.min(1 << 22)),
                    ..LoadReport::default()
                };
                let mut conn = Connection::connect(addr).await?;
                let mut digest = credentials.map(|(u, k)| DigestClient::new(&u, &k));
                tokio::time::sleep_until(start.into()).await;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    if !conn.is_open() {
                        conn = Connection::connect(addr).await?;
                    }
                    let one = async {
                        match digest.as_mut() {
                            Some(d) => d
                                .send(&mut conn, "GET", &uri, &[], b"")
                                .await
                                .map_err(anyhow::Error::from),
                            None => {
                                let t = Instant::now();
                                let response = conn.send("GET", &uri, &[], b"").await?;
                                Ok(bench::digest::Exchange {
                                    response,
                                    elapsed: t.elapsed(),
                                    challenges: 0,
                                    stale: 0,
                                })
                            }
                        }
                    };
                    let ex = tokio::time::timeout(REQUEST_TIMEOUT, one)
                        .await
                        .with_context(|| {
                            format!("GET {uri} on {addr} took longer than {REQUEST_TIMEOUT:?}")
                        })??;
                    report.challenges += u64::from(ex.challenges);
                    report.stale += u64::from(ex.stale);
                    ensure!(
                        ex.response.status == 200,
                        "GET {uri} on {addr}: {}",
                        describe(&ex.response)
                    );
                    ensure!(
                        ex.response.body[..] == expected[..],
                        "GET {uri} on {addr}: a different body: {}",
                        describe(&ex.response)
                    );
                    if sent >= measure_from && Instant::now() <= end {
                        report.ok += 1;
                        report.samples.push(ex.elapsed);
                    }
                }
                anyhow::Ok(report)
            });
        }
        let mut total = LoadReport::default();
        while let Some(joined) = tasks.join_next().await {
            // On the first error, dropping `tasks` aborts the other connections.
            let r = joined.context("a load task panicked")??;
            total.ok += r.ok;
            total.challenges += r.challenges;
            total.stale += r.stale;
            total.samples.extend(r.samples);
        }
        Ok(total)
    }
}
