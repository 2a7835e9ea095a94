//! Writes the seed inputs of the `manifest` and `pack` fuzz targets (`fuzz/`), made by
//! this crate's own encoders: manifest JSON, sealed manifests and packs of sealed chunk
//! records, all under the fuzz targets' fixed key, cluster and snapshot.
//!
//! `cargo run -p headlock-core --example fuzz_seeds -- <corpus dir>` (what
//! `fuzz/seed-corpus.sh` runs) writes `<dir>/manifest/*` and `<dir>/pack/*`.

use std::path::Path;

use headlock_core::ObjectId;
use headlock_core::envelope::DataKey;
use headlock_core::model::ChunkId;
use headlock_core::snapshot::{
    ChunkCipher, ChunkIdKey, EntryType, FileStamp, Manifest, ManifestEntry, ManifestKind,
    PACK_MAGIC,
};

fn entry(path: &str, entry_type: EntryType) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        entry_type,
        mode: 0o644,
        mtime: 1_700_000_000,
        size: 0,
        target: None,
        chunks: vec![],
        stamp: None,
    }
}

fn manifests() -> Vec<Manifest> {
    let tree = Manifest {
        version: 1,
        kind: ManifestKind::Tree,
        source: Some("/var/lib/mongodb".into()),
        entries: vec![
            ManifestEntry {
                mode: 0o755,
                ..entry("db", EntryType::Dir)
            },
            ManifestEntry {
                size: 3,
                chunks: vec![(ChunkId([1; 32]), 1), (ChunkId([2; 32]), 2)],
                stamp: Some(FileStamp {
                    ctime_ns: 1_700_000_000_123_456_789,
                    inode: 131_075,
                }),
                ..entry("db/collection-0.wt", EntryType::File)
            },
            ManifestEntry {
                mode: 0o777,
                target: Some("collection-0.wt".into()),
                ..entry("db/latest", EntryType::Symlink)
            },
            entry("db/journal/WiredTigerLog.0000000001", EntryType::File),
        ],
    };
    let stream = Manifest {
        version: 1,
        kind: ManifestKind::Stream,
        source: None,
        entries: vec![ManifestEntry {
            size: 4 * 1024 * 1024 + 5,
            chunks: vec![(ChunkId([3; 32]), 4 * 1024 * 1024), (ChunkId([4; 32]), 5)],
            ..entry("stream", EntryType::File)
        }],
    };
    let empty = Manifest {
        version: 1,
        kind: ManifestKind::Tree,
        source: None,
        entries: vec![],
    };
    vec![tree, stream, empty]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("writing a seed");
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: fuzz_seeds <corpus dir>");
    let (manifest_dir, pack_dir) = (
        Path::new(&out).join("manifest"),
        Path::new(&out).join("pack"),
    );
    for d in [&manifest_dir, &pack_dir] {
        std::fs::create_dir_all(d).expect("creating a corpus directory");
    }
    // The fuzz targets' fixed key, cluster and snapshot.
    let key = DataKey::from_bytes([0x42; 32]);
    let (cipher, ids) = (ChunkCipher::new(&key), ChunkIdKey::derive(&key));
    let (cluster, snapshot) = (ObjectId::from_bytes([1; 12]), ObjectId::from_bytes([2; 12]));

    for (i, m) in manifests().iter().enumerate() {
        // Even first byte: JSON; odd: a sealed manifest object.
        let mut json = vec![0u8];
        json.extend(serde_json::to_vec(m).expect("a manifest encodes"));
        write(&manifest_dir, &format!("json-{i}"), &json);
        let mut sealed = vec![1u8];
        sealed.extend(cipher.seal_manifest(cluster, snapshot, m).expect("seals"));
        write(&manifest_dir, &format!("sealed-{i}"), &sealed);
    }

    let chunks: [&[u8]; 3] = [
        b"x",
        &[b'a'; 5000],
        b"{\"_id\": 1, \"name\": \"headlock\"}\n",
    ];
    let mut pack = PACK_MAGIC.to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        let record = cipher
            .seal_chunk(cluster, snapshot, ids.id(chunk), chunk)
            .expect("seals");
        let mut one = PACK_MAGIC.to_vec();
        one.extend_from_slice(&record);
        write(&pack_dir, &format!("pack-{i}"), &one);
        pack.extend_from_slice(&record);
    }
    write(&pack_dir, "pack-all", &pack);
    write(&pack_dir, "pack-empty", PACK_MAGIC);
    println!(
        "seeded {} and {}",
        manifest_dir.display(),
        pack_dir.display()
    );
}
