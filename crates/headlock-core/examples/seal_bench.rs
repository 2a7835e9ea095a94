//! Single-thread throughput of the snapshot format's data path: chunk ids, `seal_chunk`
//! and `open_chunk` on 1 MiB chunks of random bytes and of JSON-like text.
//!
//! ```text
//! cargo run --release -p headlock-core --example seal_bench [MiB per case, default 512]
//! ```
//!
//! MB/s are of plaintext (10^6 bytes per second). Each case cycles through 16 distinct
//! chunks so that the input is not one cache-resident buffer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use headlock_core::ObjectId;
use headlock_core::envelope::DataKey;
use headlock_core::snapshot::{ChunkCipher, ChunkIdKey};
use rand::RngCore;

const CHUNK: usize = 1 << 20;
const DISTINCT: usize = 16;

/// MongoDB-export-like JSON lines with random ids, numbers and words (zstd -1 keeps
/// about a third of it, as with real exports; a fixed-template text would compress to
/// a tenth and flatter the figure).
fn json_like(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out = Vec::with_capacity(n + 300);
    while out.len() < n {
        let (a, b, c, d) = (next(), next(), next(), next());
        out.extend_from_slice(
            format!(
                "{{\"_id\": {{\"$oid\": \"{:016x}{:08x}\"}}, \"user\": \"{}.{}{}\", \
                 \"score\": {}, \"balance\": {}.{:02}, \"tags\": [\"{}\", \"{}\"], \
                 \"active\": {}, \"created\": {{\"$date\": \"2024-{:02}-{:02}T{:02}:{:02}:{:02}Z\"}}}}\n",
                a,
                b as u32,
                WORDS[(c % 16) as usize],
                WORDS[((c >> 4) % 16) as usize],
                c % 1000,
                d % 100_000,
                (d >> 20) % 1_000_000,
                (d >> 40) % 100,
                WORDS[((c >> 8) % 16) as usize],
                WORDS[((c >> 12) % 16) as usize],
                d % 3 == 0,
                1 + (c >> 16) % 12,
                1 + (c >> 20) % 28,
                (c >> 24) % 24,
                (c >> 32) % 60,
                (c >> 40) % 60,
            )
            .as_bytes(),
        );
    }
    out.truncate(n);
    out
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MiB per case"))
        .unwrap_or(512);
    let rounds = mib.max(DISTINCT);
    let dk = DataKey::generate().expect("random");
    let ids = ChunkIdKey::derive(&dk);
    let cipher = ChunkCipher::new(&dk);
    let (cluster, snapshot) = (ObjectId::new(), ObjectId::new());

    let mut rng = rand::thread_rng();
    let random: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|_| {
            let mut v = vec![0u8; CHUNK];
            rng.fill_bytes(&mut v);
            v
        })
        .collect();
    let json: Vec<Vec<u8>> = (0..DISTINCT as u64).map(|s| json_like(CHUNK, s)).collect();

    println!("snapshot format, one thread, 1 MiB chunks, {rounds} MiB per case");
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>9}",
        "input", "id MB/s", "seal MB/s", "open MB/s", "stored %"
    );
    for (name, chunks) in [("random", &random), ("json", &json)] {
        let chunk_ids: Vec<_> = chunks.iter().map(|c| ids.id(c)).collect();
        let records: Vec<Vec<u8>> = chunks
            .iter()
            .zip(&chunk_ids)
            .map(|(c, id)| cipher.seal_chunk(cluster, snapshot, *id, c).unwrap())
            .collect();
        let stored: usize = records.iter().map(Vec::len).sum();

        let t = Instant::now();
        for i in 0..rounds {
            black_box(ids.id(&chunks[i % DISTINCT]));
        }
        let id_rate = mbps(rounds * CHUNK, t.elapsed());

        let t = Instant::now();
        for i in 0..rounds {
            let k = i % DISTINCT;
            black_box(
                cipher
                    .seal_chunk(cluster, snapshot, chunk_ids[k], &chunks[k])
                    .unwrap(),
            );
        }
        let seal_rate = mbps(rounds * CHUNK, t.elapsed());

        let t = Instant::now();
        for i in 0..rounds {
            let k = i % DISTINCT;
            black_box(
                cipher
                    .open_chunk(&ids, cluster, snapshot, chunk_ids[k], &records[k])
                    .unwrap(),
            );
        }
        let open_rate = mbps(rounds * CHUNK, t.elapsed());

        println!(
            "{name:<8} {id_rate:>10.0} {seal_rate:>10.0} {open_rate:>10.0} {:>8.1}%",
            100.0 * stored as f64 / (DISTINCT * CHUNK) as f64
        );
    }
    println!("(open includes the id check: decrypt, decompress, keyed BLAKE3)");
}
