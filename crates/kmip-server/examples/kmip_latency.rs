//! Round-trip latency of Create + Activate + Get (one AES-256 key each time) over one
//! mutual-TLS connection, against the embedded server (in-process, its key store in a
//! temporary directory, every key fsync'ed) and against a PyKMIP 0.11 server (a real
//! process, installed and started through testkit), in the same run; prints p50 / p99
//! for each and the ratio. Then throughput: Create + Activate + Get sequences per second
//! with 1, 4 and 16 concurrent clients of one `Client` whose pool holds as many
//! connections, for THROUGHPUT_SECONDS each, against both servers, and the ratio.
//! With `HEADLOCK_COSMIAN_KMS` naming a `cosmian_kms` binary (`scripts/interop.sh`
//! builds one), Cosmian KMS is measured the same way, as a third peer, and its ratio
//! printed too.
//!
//! Everything is measured twice: as three requests (Create, Activate, Get), and as a
//! rotation makes its key (`Client::create_active_symmetric_key`: one batch with the
//! embedded server, Create then Activate + Get with PyKMIP and Cosmian KMS, which refuse
//! ID Placeholders; each client's first key also pays for that refusal).
//!
//! ```text
//! cargo run --release -p kmip-server --example kmip_latency [-- EMBEDDED_ITERATIONS PYKMIP_ITERATIONS [THROUGHPUT_SECONDS]]
//! ```

use std::time::{Duration, Instant};

use kmip::client::Client;
use kmip::types::{CryptographicAlgorithm, CryptographicUsageMask};

const WARMUP: usize = 5;

/// How a key is made.
#[derive(Clone, Copy)]
enum Mode {
    /// Create, Activate and Get, one request each.
    Separate,
    /// As a rotation makes its key.
    AsRotations,
}

impl Mode {
    fn describe(self) -> &'static str {
        match self {
            Mode::Separate => "Create + Activate + Get as three requests",
            Mode::AsRotations => {
                "Create + Activate + Get as a rotation sends them (create_active_symmetric_key)"
            }
        }
    }
}

async fn measure(
    client: &Client,
    iterations: usize,
    mode: Mode,
) -> Result<Vec<Duration>, kmip::error::Error> {
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARMUP + iterations {
        let start = Instant::now();
        measure_one(client, mode).await?;
        let elapsed = start.elapsed();
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    samples.sort();
    Ok(samples)
}

/// Create + Activate + Get sequences per second over `seconds`, by `workers` tasks
/// sharing one client whose pool holds `workers` connections.
async fn throughput(
    config: &kmip::client::ClientConfig,
    workers: usize,
    seconds: f64,
    mode: Mode,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut config = config.clone();
    config.max_connections = workers;
    let client = Client::new(config)?;
    measure(&client, 1, mode).await?; // connect and warm up
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let client = client.clone();
        tasks.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                measure_one(&client, mode).await?;
                done += 1;
            }
            Ok::<u64, kmip::error::Error>(done)
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// One Create + Activate + Get of a fresh AES-256 key (its 32 bytes checked).
async fn measure_one(client: &Client, mode: Mode) -> Result<(), kmip::error::Error> {
    let usage = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
    let algorithm = CryptographicAlgorithm::AES;
    let key = match mode {
        Mode::Separate => {
            let uid = client
                .create_symmetric_key(algorithm, 256, usage, None)
                .await?;
            client.activate(&uid).await?;
            client.get_symmetric_key(&uid).await?
        }
        Mode::AsRotations => {
            client
                .create_active_symmetric_key(algorithm, 256, usage, None)
                .await?
                .material?
        }
    };
    assert_eq!(key.key.len(), 32);
    Ok(())
}

const CONCURRENCY: [usize; 3] = [1, 4, 16];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let embedded_n = args.first().copied().unwrap_or(1000);
    let pykmip_n = args.get(1).copied().unwrap_or(200);
    let seconds = args.get(2).copied().unwrap_or(10) as f64;
    for mode in [Mode::Separate, Mode::AsRotations] {
        run(mode, embedded_n, pykmip_n, seconds).await?;
    }
    Ok(())
}

/// Every measurement of the module docs, for one way of making a key.
async fn run(
    mode: Mode,
    embedded_n: usize,
    pykmip_n: usize,
    seconds: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    // Embedded server, in this process (testkit's harness: fresh PKI and store).
    let mut server = testkit::kmip::Embedded::start().await;
    let pki = server.pki.clone();
    let embedded = server.client();
    let embedded_samples = measure(&embedded, embedded_n, mode).await?;
    let version = embedded.negotiated_version().await;
    let mut embedded_rates = Vec::new();
    for workers in CONCURRENCY {
        embedded_rates.push(throughput(&server.client_config(), workers, seconds, mode).await?);
    }
    server.stop().await;

    // PyKMIP server, a real process on loopback, on the same certificates.
    let files = testkit::TlsFiles::from(&pki);
    let pykmip =
        tokio::task::spawn_blocking(move || testkit::PyKmipServer::start(&files)).await??;
    let remote = Client::new(testkit::kmip::client_config(&pki, vec![pykmip.addr()]))?;
    let pykmip_samples = measure(&remote, pykmip_n, mode).await?;
    let pykmip_version = remote.negotiated_version().await;
    let mut pykmip_rates = Vec::new();
    for workers in CONCURRENCY {
        pykmip_rates.push(throughput(remote.config(), workers, seconds, mode).await?);
    }
    drop(pykmip);

    // Cosmian KMS, a real process on the same certificates, if built.
    let cosmian = match testkit::cosmian::CosmianKms::binary() {
        Some(binary) => {
            let dir = tempfile::tempdir()?;
            let (pki2, path) = (pki.clone(), dir.path().to_path_buf());
            let kms = tokio::task::spawn_blocking(move || {
                testkit::cosmian::CosmianKms::start(binary, &path, &pki2)
            })
            .await?;
            let client = kms.client(&pki);
            let samples = measure(&client, pykmip_n, mode).await?;
            let version = client.negotiated_version().await;
            let mut rates = Vec::new();
            for workers in CONCURRENCY {
                rates.push(throughput(client.config(), workers, seconds, mode).await?);
            }
            tokio::task::spawn_blocking(move || drop(kms)).await?;
            drop(dir);
            Some((samples, version, rates))
        }
        None => None,
    };

    let e50 = percentile(&embedded_samples, 50.0);
    let e99 = percentile(&embedded_samples, 99.0);
    let p50 = percentile(&pykmip_samples, 50.0);
    let p99 = percentile(&pykmip_samples, 99.0);
    println!(
        "{} (AES-256), one mutual-TLS connection, loopback",
        mode.describe()
    );
    println!(
        "embedded  (KMIP {}, n={embedded_n}): p50 {:.3} ms  p99 {:.3} ms",
        version.map_or("?".into(), |v| v.to_string()),
        ms(e50),
        ms(e99)
    );
    println!(
        "PyKMIP    (KMIP {}, n={pykmip_n}): p50 {:.3} ms  p99 {:.3} ms",
        pykmip_version.map_or("?".into(), |v| v.to_string()),
        ms(p50),
        ms(p99)
    );
    println!(
        "ratio PyKMIP / embedded: p50 {:.1}x  p99 {:.1}x",
        ms(p50) / ms(e50),
        ms(p99) / ms(e99)
    );
    if let Some((samples, version, _)) = &cosmian {
        let c50 = percentile(samples, 50.0);
        let c99 = percentile(samples, 99.0);
        println!(
            "Cosmian   (KMIP {}, n={pykmip_n}): p50 {:.3} ms  p99 {:.3} ms  ratio Cosmian / embedded: p50 {:.1}x  p99 {:.1}x",
            version.map_or("?".into(), |v| v.to_string()),
            ms(c50),
            ms(c99),
            ms(c50) / ms(e50),
            ms(c99) / ms(e99)
        );
    }
    println!(
        "{} per second, {seconds} s each, one pooled connection per client task",
        mode.describe()
    );
    for (i, ((workers, e), p)) in CONCURRENCY
        .iter()
        .zip(&embedded_rates)
        .zip(&pykmip_rates)
        .enumerate()
    {
        let cosmian = cosmian.as_ref().map_or(String::new(), |(_, _, rates)| {
            format!("  Cosmian {:>7.1}/s  ratio {:.1}x", rates[i], e / rates[i])
        });
        println!(
            "{workers:>2} at once: embedded {e:>8.1}/s  PyKMIP {p:>7.1}/s  ratio {:.1}x{cosmian}",
            e / p
        );
    }
    Ok(())
}
