//! Round-trip latency of Create + Activate + Get (one AES-256 key each time) over one
//! mutual-TLS connection, against the embedded server (in-process, SQLite in a
//! temporary directory) and against a PyKMIP 0.11 server (a real process, installed
//! and started through testkit), in the same run; prints p50 / p99 for each and the
//! ratio.
//!
//! ```text
//! cargo run --release -p kmip-server --example kmip_latency [-- EMBEDDED_ITERATIONS PYKMIP_ITERATIONS]
//! ```

use std::time::{Duration, Instant};

use kmip::client::Client;
use kmip::types::{CryptographicAlgorithm, CryptographicUsageMask};

const WARMUP: usize = 5;

async fn measure(client: &Client, iterations: usize) -> Result<Vec<Duration>, kmip::error::Error> {
    let usage = CryptographicUsageMask::ENCRYPT | CryptographicUsageMask::DECRYPT;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARMUP + iterations {
        let start = Instant::now();
        let uid = client
            .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, None)
            .await?;
        client.activate(&uid).await?;
        let key = client.get_symmetric_key(&uid).await?;
        let elapsed = start.elapsed();
        assert_eq!(key.key.len(), 32);
        if i >= WARMUP {
            samples.push(elapsed);
        }
    }
    samples.sort();
    Ok(samples)
}

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

    // Embedded server, in this process (testkit's harness: fresh PKI and store).
    let mut server = testkit::kmip::Embedded::start().await;
    let pki = server.pki.clone();
    let embedded = server.client();
    let embedded_samples = measure(&embedded, embedded_n).await?;
    let version = embedded.negotiated_version().await;
    server.stop().await;

    // PyKMIP server, a real process on loopback, on the same certificates.
    let files = testkit::TlsFiles::from(&pki);
    let pykmip =
        tokio::task::spawn_blocking(move || testkit::PyKmipServer::start(&files)).await??;
    let remote = Client::new(testkit::kmip::client_config(&pki, vec![pykmip.addr()]))?;
    let pykmip_samples = measure(&remote, pykmip_n).await?;
    let pykmip_version = remote.negotiated_version().await;
    drop(pykmip);

    let e50 = percentile(&embedded_samples, 50.0);
    let e99 = percentile(&embedded_samples, 99.0);
    let p50 = percentile(&pykmip_samples, 50.0);
    let p99 = percentile(&pykmip_samples, 99.0);
    println!("Create + Activate + Get (AES-256), one mutual-TLS connection, loopback");
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
    Ok(())
}
