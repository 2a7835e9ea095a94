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
use std::time::Duration;

use anyhow::{Context, ensure};
use bench::daemon::Daemon;
use bench::load::{self, Client, REQUEST_TIMEOUT, Window};
use bench::process::{self, Store};
use bench::rest::{Api, encryption_key_uri};
use bench::setup;
use bench::stats::{Samples, ms};
use clap::Parser;
use serde_json::Value;

/// The user the benchmark creates.
const USERNAME: &str = "bench";
/// Rotations in each of the "first" and "last" windows.
const WINDOW: usize = 50;
/// Time the load clients get to connect before the warm-up starts.
const CONNECT_DELAY: Duration = Duration::from_millis(50);

/// GET encryptionKey requests/s (digest) against bare axum, and rotation latency.
#[derive(Debug, Parser)]
#[command(name = "api", version)]
struct Args {
    /// Concurrent keep-alive connections of the GET load (1 to 256).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Measured seconds of the GET load, per server (0.1 to 600).
    #[arg(long, default_value_t = 5.0, value_parser = setup::seconds)]
    duration: f64,
    /// Warm-up seconds before each measured GET load (0 to 600).
    #[arg(long, default_value_t = 1.0, value_parser = setup::seconds)]
    warmup: f64,
    /// Sequential rotations (PUT encryptionKey) to time (1 to 100000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rotations: u32,
    /// The headlock binary (default: `headlock` next to this executable).
    #[arg(long)]
    headlock: Option<PathBuf>,
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
    let bin = setup::headlock_bin(args.headlock.as_deref())?;
    let dir = tempfile::Builder::new()
        .prefix("headlock-bench-")
        .tempdir()
        .context("creating a temporary data directory")?;
    let store = Store::data_dir(dir.path());
    let key = process::create_user(&bin, store, USERNAME, "GLOBAL_OWNER")?;
    // Killed on drop: on return, on error and on panic (unwinding).
    let server = process::serve(&bin, store, "headlock serve")?;
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
    server: &Daemon,
    key: &str,
    peer_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let addr = server.addr();
    let mut api = Api::connect(addr, USERNAME, key).await?;
    let group = api.create_group("bench").await?;
    let cluster = api.encrypted_replica_set(&group, "rs0").await?;
    let uri = encryption_key_uri(&group, &cluster);
    let body: Arc<[u8]> = api.raw("GET", &uri, "", 200).await?.body.into();
    let first_key = key_id(&body)?;

    let peer = start_bare_axum(peer_rt, body.clone()).await?;

    println!(
        "\nGET encryptionKey ({} bytes of JSON), {} connections, {:.1} s warm-up, {:.1} s measured, one client",
        body.len(),
        args.connections,
        args.warmup,
        args.duration
    );
    let clients = vec![
        Client::new(peer, "GET", uri.clone(), 200).with_body(body.clone());
        args.connections.into()
    ];
    let load = |clients: Vec<Client>| async move {
        let window = Window::after(
            CONNECT_DELAY,
            Duration::from_secs_f64(args.warmup),
            Duration::from_secs_f64(args.duration),
        );
        let report = load::run(&clients, USERNAME, key, &window, None).await?;
        anyhow::Ok((report.per_second(&window), report))
    };
    // The bare handler never challenges: the digest client sends no Authorization.
    let (bare_rps, mut bare) = load(clients.clone()).await.context("load on bare axum")?;
    let clients = clients.into_iter().map(|c| Client { addr, ..c }).collect();
    let (hl_rps, mut hl) = load(clients).await.context("load on headlock")?;
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
        let ex = tokio::time::timeout(REQUEST_TIMEOUT, api.exchange("PUT", &uri, "", 201))
            .await
            .with_context(|| format!("rotation {} took longer than {REQUEST_TIMEOUT:?}", i + 1))?
            .with_context(|| format!("rotation {}", i + 1))?;
        challenges += ex.challenges;
        stale += ex.stale;
        all.push(ex.elapsed);
        timeline.push(ex.elapsed);
    }
    let response = api
        .raw("GET", &uri, "", 200)
        .await
        .context("after the rotations")?;
    let last_key = key_id(&response.body)?;
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

fn key_id(body: &[u8]) -> anyhow::Result<String> {
    let v: Value = serde_json::from_slice(body).context("the encryptionKey body is not JSON")?;
    v["encryptionKeyUUID"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no \"encryptionKeyUUID\" in {v}"))
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
