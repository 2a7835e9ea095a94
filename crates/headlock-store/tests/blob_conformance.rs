//! The [`BlobStore`] conformance suite: what every blob backend must do, written once
//! against `&dyn BlobStore` and stamped out per backend by `conformance!` (S3 will be one
//! more line), followed by what is particular to the local directory (its mode, its
//! staging files, a full disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use headlock_core::blob::{BlobError, BlobStore};
use headlock_store::ObjectBlobStore;

/// What the suite needs of a backend.
trait Backend: Sized {
    /// A fresh, empty store in its own place.
    async fn start() -> Self;
    /// The store under test.
    fn store(&self) -> Arc<dyn BlobStore>;
}

/// A local directory in a fresh temporary directory.
struct LocalBackend {
    _dir: tempfile::TempDir,
    store: Arc<ObjectBlobStore>,
}

impl Backend for LocalBackend {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ObjectBlobStore::local(dir.path().join("chunks")).expect("local store");
        LocalBackend {
            _dir: dir,
            store: Arc::new(store),
        }
    }

    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }
}

macro_rules! conformance {
    ($backend:ident: $harness:ty, [$($name:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    suite::$name(<$harness as Backend>::start().await).await;
                }
            )*
        }
    };
}

conformance!(local: LocalBackend, [
    accepts_put_get_round_trip,
    accepts_empty_object,
    get_range_returns_exactly_the_range,
    rejects_range_past_the_end_or_inverted,
    rejects_missing_object_with_not_found,
    delete_removes_and_tolerates_missing_objects,
    overwrite_replaces_the_whole_object,
    list_returns_objects_under_a_prefix_only,
    rejects_invalid_names_and_prefixes,
    accepts_large_object,
    accepts_concurrent_puts_of_different_objects,
    readers_never_see_a_partial_overwrite,
]);

/// Bytes that differ at every offset a test is likely to look at.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

mod suite {
    use super::*;

    fn not_found<T: std::fmt::Debug>(r: Result<T, BlobError>, path: &str) {
        match r {
            Err(BlobError::NotFound(p)) => assert_eq!(p, path),
            other => panic!("expected NotFound({path}), got {other:?}"),
        }
    }

    fn backend_error<T: std::fmt::Debug>(r: Result<T, BlobError>) -> String {
        match r {
            Err(BlobError::Backend { path, reason }) => format!("{path}: {reason}"),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }

    pub async fn accepts_put_get_round_trip(b: impl Backend) {
        let s = b.store();
        let bytes = pattern(100_000, 1);
        s.put("packs/c1/p1", bytes.clone()).await.unwrap();
        assert_eq!(s.get("packs/c1/p1").await.unwrap(), bytes);
        s.put("manifests/c1/s1", b"manifest".to_vec())
            .await
            .unwrap();
        assert_eq!(s.get("manifests/c1/s1").await.unwrap(), b"manifest");
    }

    pub async fn accepts_empty_object(b: impl Backend) {
        let s = b.store();
        s.put("packs/c1/empty", Vec::new()).await.unwrap();
        assert_eq!(s.get("packs/c1/empty").await.unwrap(), Vec::<u8>::new());
        assert_eq!(
            s.get_range("packs/c1/empty", 0, 0).await.unwrap(),
            Vec::<u8>::new()
        );
        let listed = s.list("packs/c1/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].path.as_str(), listed[0].size),
            ("packs/c1/empty", 0)
        );
    }

    pub async fn get_range_returns_exactly_the_range(b: impl Backend) {
        let s = b.store();
        let bytes = pattern(70_000, 2);
        s.put("packs/c1/p1", bytes.clone()).await.unwrap();
        for (start, end) in [(0u64, 8u64), (8, 1008), (65_536, 70_000), (69_999, 70_000)] {
            assert_eq!(
                s.get_range("packs/c1/p1", start, end).await.unwrap(),
                bytes[start as usize..end as usize],
                "{start}..{end}"
            );
        }
        assert_eq!(
            s.get_range("packs/c1/p1", 500, 500).await.unwrap(),
            Vec::<u8>::new()
        );
    }

    pub async fn rejects_range_past_the_end_or_inverted(b: impl Backend) {
        let s = b.store();
        s.put("packs/c1/p1", pattern(1000, 3)).await.unwrap();
        // A record that runs past the end of its pack (a truncated pack) is an error,
        // never a short read.
        let msg = backend_error(s.get_range("packs/c1/p1", 900, 1100).await);
        assert!(msg.contains("packs/c1/p1") && msg.contains("1000"), "{msg}");
        backend_error(s.get_range("packs/c1/p1", 1000, 1001).await);
        backend_error(s.get_range("packs/c1/p1", 5000, 6000).await);
        backend_error(s.get_range("packs/c1/p1", 10, 5).await);
    }

    pub async fn rejects_missing_object_with_not_found(b: impl Backend) {
        let s = b.store();
        not_found(s.get("packs/c1/none").await, "packs/c1/none");
        not_found(s.get_range("packs/c1/none", 0, 10).await, "packs/c1/none");
        not_found(s.get_range("packs/c1/none", 0, 0).await, "packs/c1/none");
        assert_eq!(s.list("packs/c1/").await.unwrap(), vec![]);
    }

    pub async fn delete_removes_and_tolerates_missing_objects(b: impl Backend) {
        let s = b.store();
        s.put("packs/c1/p1", pattern(10, 4)).await.unwrap();
        s.put("packs/c1/p2", pattern(10, 5)).await.unwrap();
        s.delete("packs/c1/p1").await.unwrap();
        not_found(s.get("packs/c1/p1").await, "packs/c1/p1");
        s.delete("packs/c1/p1").await.unwrap();
        s.delete("packs/never/written").await.unwrap();
        assert_eq!(s.get("packs/c1/p2").await.unwrap(), pattern(10, 5));
        let listed: Vec<String> = s
            .list("packs/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.path)
            .collect();
        assert_eq!(listed, ["packs/c1/p2"]);
    }

    pub async fn overwrite_replaces_the_whole_object(b: impl Backend) {
        let s = b.store();
        s.put("manifests/c1/s1", pattern(5000, 6)).await.unwrap();
        s.put("manifests/c1/s1", pattern(100, 7)).await.unwrap();
        assert_eq!(s.get("manifests/c1/s1").await.unwrap(), pattern(100, 7));
        let listed = s.list("manifests/c1/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, 100);
    }

    pub async fn list_returns_objects_under_a_prefix_only(b: impl Backend) {
        let s = b.store();
        let before = time::OffsetDateTime::now_utc().unix_timestamp();
        for (path, len) in [
            ("packs/c1/p2", 20),
            ("packs/c1/p1", 10),
            ("packs/c10/p1", 30),
            ("manifests/c1/s1", 40),
        ] {
            s.put(path, pattern(len, 8)).await.unwrap();
        }
        let after = time::OffsetDateTime::now_utc().unix_timestamp();
        let c1 = s.list("packs/c1/").await.unwrap();
        let shown: Vec<(&str, u64)> = c1.iter().map(|m| (m.path.as_str(), m.size)).collect();
        // Sorted by path; "packs/c10/" is not under "packs/c1/".
        assert_eq!(shown, [("packs/c1/p1", 10), ("packs/c1/p2", 20)]);
        for m in &c1 {
            // File times have second precision at worst; allow for it.
            assert!(
                (before - 1..=after + 1).contains(&m.modified_unix),
                "{m:?} not within {before}..={after}"
            );
        }
        assert_eq!(s.list("packs/").await.unwrap().len(), 3);
        assert_eq!(s.list("").await.unwrap().len(), 4);
        assert_eq!(s.list("packs/c2/").await.unwrap(), vec![]);
    }

    pub async fn rejects_invalid_names_and_prefixes(b: impl Backend) {
        let s = b.store();
        for name in [
            "",
            "../escape",
            "packs/../../escape",
            "packs//p",
            "/packs/p",
            "packs/p#1",
        ] {
            backend_error(s.put(name, vec![1]).await);
            backend_error(s.get(name).await);
            backend_error(s.delete(name).await);
        }
        // A prefix is directory-like: empty or ending in '/'.
        backend_error(s.list("packs/c1").await);
        backend_error(s.list("../").await);
        assert_eq!(s.list("").await.unwrap(), vec![]);
    }

    pub async fn accepts_large_object(b: impl Backend) {
        let s = b.store();
        let bytes = pattern(40 << 20, 9);
        s.put("packs/c1/large", bytes.clone()).await.unwrap();
        let back = s.get("packs/c1/large").await.unwrap();
        assert!(back == bytes, "40 MiB object did not read back equal");
        let tail = s
            .get_range("packs/c1/large", (40 << 20) - 4096, 40 << 20)
            .await
            .unwrap();
        assert_eq!(tail, bytes[(40 << 20) - 4096..]);
        assert_eq!(s.list("packs/c1/").await.unwrap()[0].size, 40 << 20);
    }

    pub async fn accepts_concurrent_puts_of_different_objects(b: impl Backend) {
        let s = b.store();
        let mut tasks = Vec::new();
        for n in 0..16u8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                // Half in a directory nobody created yet, all at once.
                let path = format!("packs/c{}/p{n}", n % 2);
                s.put(&path, pattern(50_000 + usize::from(n), n))
                    .await
                    .map(|()| path)
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for n in 0..16u8 {
            let path = format!("packs/c{}/p{n}", n % 2);
            assert_eq!(
                s.get(&path).await.unwrap(),
                pattern(50_000 + usize::from(n), n),
                "{path}"
            );
        }
        assert_eq!(s.list("packs/").await.unwrap().len(), 16);
    }

    /// While one task overwrites an object again and again, every read sees one whole
    /// version, never a mixture or a prefix.
    pub async fn readers_never_see_a_partial_overwrite(b: impl Backend) {
        let s = b.store();
        let versions = [pattern(3 << 20, 10), pattern(2 << 20, 11)];
        s.put("packs/c1/hot", versions[0].clone()).await.unwrap();
        let writer = {
            let s = s.clone();
            let versions = versions.clone();
            tokio::spawn(async move {
                for round in 0..12 {
                    s.put("packs/c1/hot", versions[round % 2].clone())
                        .await
                        .unwrap();
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let got = s.get("packs/c1/hot").await.unwrap();
            assert!(
                got == versions[0] || got == versions[1],
                "read {} bytes matching neither version",
                got.len()
            );
            reads += 1;
        }
        writer.await.unwrap();
        assert_eq!(s.get("packs/c1/hot").await.unwrap(), versions[1]);
    }
}

// ----- the local directory

/// Every regular file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(dir).unwrap().to_owned();
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

#[cfg(unix)]
#[test]
fn local_store_creates_a_private_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("headlock-data").join("chunks");
    let store = ObjectBlobStore::local(&root).unwrap();
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    assert_eq!(
        store.local_root(),
        Some(root.canonicalize().unwrap().as_path())
    );
}

#[tokio::test]
async fn local_store_keeps_objects_as_files_and_leaves_no_staging_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("chunks");
    let store = ObjectBlobStore::local(&root).unwrap();
    store.put("packs/c1/p1", pattern(1000, 1)).await.unwrap();
    store.put("packs/c1/p1", pattern(500, 2)).await.unwrap();
    store.put("manifests/c1/s1", pattern(10, 3)).await.unwrap();
    assert_eq!(files_under(&root), ["manifests/c1/s1", "packs/c1/p1"]);
    assert_eq!(
        std::fs::read(root.join("packs/c1/p1")).unwrap(),
        pattern(500, 2)
    );
    // Objects written before are found again by a new store on the same directory.
    let again = ObjectBlobStore::local(&root).unwrap();
    assert_eq!(again.get("manifests/c1/s1").await.unwrap(), pattern(10, 3));
}

#[tokio::test]
async fn remove_staging_files_removes_crash_leftovers_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("chunks");
    let store = ObjectBlobStore::local(&root).unwrap();
    store.put("packs/c1/p1", pattern(100, 1)).await.unwrap();
    // What a crash between the staging write and the rename leaves behind.
    std::fs::write(root.join("packs/c1/p2#1"), pattern(100, 2)).unwrap();
    std::fs::create_dir_all(root.join("packs/c2")).unwrap();
    std::fs::write(root.join("packs/c2/p3#17"), pattern(100, 3)).unwrap();
    let listed: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.path)
        .collect();
    assert_eq!(listed, ["packs/c1/p1"], "staging files must be invisible");
    assert_eq!(store.remove_staging_files().await.unwrap(), 2);
    assert_eq!(files_under(&root), ["packs/c1/p1"]);
    assert_eq!(store.remove_staging_files().await.unwrap(), 0);
    assert_eq!(store.get("packs/c1/p1").await.unwrap(), pattern(100, 1));
}

/// A 1 MiB tmpfs mounted on a fresh directory, unmounted when dropped (also on panic).
/// Mounting needs root, which CI and the development machines are.
struct SmallDisk {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mount_point = dir.path().join("small");
        std::fs::create_dir(&mount_point).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "headlock-test"])
            .arg(&mount_point)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a 1 MiB tmpfs failed ({status}): this test needs root, as CI has"
        );
        SmallDisk {
            mount_point,
            _dir: dir,
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.mount_point)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy: detach it now, it goes when the last file is closed.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}

#[tokio::test]
async fn rejects_put_on_full_disk_with_no_space_and_keeps_stored_objects() {
    let disk = SmallDisk::mount();
    let root = disk.mount_point.join("chunks");
    let store = ObjectBlobStore::local(&root).unwrap();
    store
        .put("packs/c1/small", pattern(100_000, 1))
        .await
        .unwrap();

    let err = store
        .put("packs/c1/large", pattern(2 << 20, 2))
        .await
        .unwrap_err();
    assert_eq!(err, BlobError::NoSpace("packs/c1/large".into()));

    // Nothing stored was harmed, the failed object is absent, no staging file is left,
    // and the space is given back.
    assert_eq!(
        store.get("packs/c1/small").await.unwrap(),
        pattern(100_000, 1)
    );
    assert!(matches!(
        store.get("packs/c1/large").await,
        Err(BlobError::NotFound(_))
    ));
    assert_eq!(files_under(&root), ["packs/c1/small"]);
    store
        .put("packs/c1/next", pattern(500_000, 3))
        .await
        .unwrap();
    assert_eq!(
        store.get("packs/c1/next").await.unwrap(),
        pattern(500_000, 3)
    );
}
