//! Single-thread cost per entry of writing a v2 manifest (the one-pass tree check,
//! JSON, zstd and AES-GCM of each frame), what a commit does for every file of a
//! backup, and of opening it again (a parent, a restore, a verify).
//!
//! ```text
//! cargo run --release -p headlock-core --example manifest_bench [entries, default 1000000]
//! ```
//!
//! The entries: 25 files a directory, each directory's files in a row as the CLI's walk
//! writes them, directories up to 6 deep, one 60-byte chunk a file.

use std::hint::black_box;
use std::time::Instant;

use headlock_core::ObjectId;
use headlock_core::envelope::DataKey;
use headlock_core::model::ChunkId;
use headlock_core::snapshot::frames::{Frame, FrameReader, MANIFEST_V2_MAGIC, ManifestWriter};
use headlock_core::snapshot::{ChunkCipher, EntryType, FileStamp, ManifestEntry, ManifestKind};

/// `n` entries in walk order under directories `d0/d1/...`.
fn entries(n: usize) -> Vec<ManifestEntry> {
    let mut out = Vec::with_capacity(n);
    let mut dir = 0usize;
    while out.len() < n {
        // Directory `dir`: a path of up to 5 components from its number in base 4.
        let mut parts = Vec::new();
        let mut x = dir;
        loop {
            parts.push(format!("d{}", x % 4));
            x /= 4;
            if x == 0 || parts.len() == 5 {
                break;
            }
        }
        parts.push(format!("n{dir}"));
        let path = parts.join("/");
        for f in 0..25 {
            if out.len() == n {
                break;
            }
            let i = out.len() as u64;
            // Chunk ids look random, as keyed BLAKE3 outputs do.
            let id = *blake3::hash(&i.to_le_bytes()).as_bytes();
            out.push(ManifestEntry {
                path: format!("{path}/file-{f:02}.json"),
                entry_type: EntryType::File,
                mode: 0o100644,
                mtime: 1_700_000_000 + i as i64,
                size: 60,
                target: None,
                chunks: vec![(ChunkId(id), 60)],
                stamp: Some(FileStamp {
                    ctime_ns: 1_700_000_000_000_000_000 + i as i64,
                    inode: 1_000_000 + i,
                }),
            });
        }
        dir += 1;
    }
    out
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("entries: a number"))
        .unwrap_or(1_000_000);
    let cipher = ChunkCipher::new(&DataKey::generate().expect("random"));
    let (cluster, snapshot) = (ObjectId::new(), ObjectId::new());
    let list = entries(n);

    let t = Instant::now();
    let mut w =
        ManifestWriter::new(&cipher, cluster, snapshot, ManifestKind::Tree, None).expect("writer");
    for e in &list {
        w.push(e).expect("entry");
    }
    let sealed = w.finish().expect("finish");
    let write = t.elapsed();

    let t = Instant::now();
    let mut reader = FrameReader::new(cluster, snapshot);
    let mut at = MANIFEST_V2_MAGIC.len();
    let mut read = 0usize;
    while !reader.is_done() {
        let prefix: [u8; 4] = sealed[at..at + 4].try_into().expect("prefix");
        let len = FrameReader::frame_len(prefix).expect("frame length");
        let frame = reader
            .open(&cipher, &sealed[at..at + len])
            .expect("frame opens");
        if let Frame::Entries(e) = frame {
            read += e.len();
            black_box(e);
        }
        at += len;
    }
    reader.finish().expect("complete");
    let open = t.elapsed();
    assert_eq!(read, n);

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "{n} entries, sealed {:.1} MiB: write {:.3} s ({:.0} ns an entry), open {:.3} s ({:.0} ns an entry)",
        sealed.len() as f64 / 1048576.0,
        write.as_secs_f64(),
        per(write),
        open.as_secs_f64(),
        per(open)
    );
}
