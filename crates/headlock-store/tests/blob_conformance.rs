//! The [`BlobStore`] conformance suite: what every blob backend must do, written once
//! against `&dyn BlobStore` and stamped out per backend by `conformance!`: a local
//! directory, and S3 (a real moto server over real HTTP, started by `scripts/moto.sh`
//! through testkit, a fresh bucket per test). What is particular to one backend follows
//! the suite: for S3, an unreachable endpoint and prefixes; for the local directory, its
//! mode, its staging files and a full disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use headlock_core::blob::{BlobError, BlobStore};
use headlock_store::{ObjectBlobStore, S3Config};

/// What the suite needs of a backend.
trait Backend: Sized {
    /// A fresh, empty store in its own place.
    async fn start() -> Self;
    /// The store under test.
    fn store(&self) -> Arc<dyn BlobStore>;
    /// Gives back what the test used (run only when the test passed).
    async fn finish(self) {}
    /// Whether two multipart uploads of one name racing to complete leave exactly one
    /// winner (AWS S3, MinIO and a local directory do; see `S3Backend`).
    const ATOMIC_MULTIPART_CREATE: bool = true;
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

/// A fresh bucket on the shared moto server.
struct S3Backend {
    store: Arc<ObjectBlobStore>,
}

/// The S3 configuration of a fresh moto bucket.
async fn moto_config() -> S3Config {
    let target = tokio::task::spawn_blocking(testkit::moto_bucket)
        .await
        .expect("moto_bucket task")
        .expect("a moto bucket (scripts/moto.sh start)");
    S3Config {
        bucket: target.bucket,
        prefix: None,
        endpoint: Some(target.endpoint),
        region: Some(target.region),
        access_key_id: Some(target.access_key_id),
        secret_access_key: Some(target.secret_access_key.into()),
        allow_http: true,
    }
}

impl Backend for S3Backend {
    // moto checks `If-None-Match` on CompleteMultipartUpload and stores the object in two
    // steps without a lock (moto/s3/responses.py and models.py, 5.2.5), so two completions
    // that overlap both succeed there: measured, 7 runs in 8 with two 24 MiB puts. AWS S3
    // and MinIO decide atomically. Single PUTs, sequential puts and moto's answer to a
    // completion over an existing object (412) are checked strictly all the same.
    const ATOMIC_MULTIPART_CREATE: bool = false;

    async fn start() -> Self {
        let store = ObjectBlobStore::s3(&moto_config().await).expect("S3 store");
        S3Backend {
            store: Arc::new(store),
        }
    }

    fn store(&self) -> Arc<dyn BlobStore> {
        self.store.clone()
    }

    /// Empties the bucket: the moto server is shared and keeps objects in memory.
    async fn finish(self) {
        let s = self.store();
        let listed = s.list("").await.expect("listing to clean up");
        futures_util::stream::iter(listed)
            .for_each_concurrent(16, |m| {
                let s = s.clone();
                async move { s.delete(&m.path).await.expect("cleaning up") }
            })
            .await;
    }
}

macro_rules! conformance {
    ($backend:ident: $harness:ty, [$($name:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = <$harness as Backend>::start().await;
                    suite::$name(&b).await;
                    b.finish().await;
                }
            )*
        }
    };
}

macro_rules! every_backend {
    ($($backend:ident: $harness:ty),* $(,)?) => {
        $(
            conformance!($backend: $harness, [
                accepts_put_get_round_trip,
                accepts_empty_object,
                get_range_returns_exactly_the_range,
                rejects_range_past_the_end_or_inverted,
                rejects_missing_object_with_not_found,
                delete_removes_and_tolerates_missing_objects,
                accepts_repeated_put_of_identical_bytes,
                rejects_overwrite_with_other_bytes,
                concurrent_puts_of_one_name_leave_one_whole_object,
                list_returns_objects_under_a_prefix_only,
                list_returns_every_object_past_one_page,
                rejects_invalid_names_and_prefixes,
                accepts_large_object,
                accepts_concurrent_puts_of_different_objects,
                readers_never_see_a_partial_object,
                put_file_stores_a_file_as_put_stores_bytes,
            ]);
        )*
    };
}

every_backend!(local: LocalBackend, s3: S3Backend);

/// Bytes that differ at every offset a test is likely to look at.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// A full pack (24 MiB) and the overshoot of its last chunk: a multipart upload on S3
/// whose last part is short.
const PACK_SIZE: usize = (24 << 20) + 4099;

/// A file holding `bytes`, as a service spools a manifest: unlinked, read from its start.
fn spooled(bytes: &[u8]) -> std::fs::File {
    use std::io::Write;
    let mut f = tempfile::tempfile().expect("temp file");
    f.write_all(bytes).expect("writing the temp file");
    f
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

    /// The paths listed under `prefix`.
    async fn listed(s: &dyn BlobStore, prefix: &str) -> Vec<String> {
        let found = s.list(prefix).await.unwrap();
        found.into_iter().map(|m| m.path).collect()
    }

    /// Whether `r` is the refusal of a put over an object with other contents.
    fn refused_overwrite(r: &Result<(), BlobError>) -> bool {
        matches!(r, Err(BlobError::Backend { reason, .. })
            if reason.contains("already exists with other contents"))
    }

    pub async fn accepts_put_get_round_trip(b: &impl Backend) {
        let s = b.store();
        let bytes = pattern(100_000, 1);
        s.put("packs/c1/p1", bytes.clone()).await.unwrap();
        assert_eq!(s.get("packs/c1/p1").await.unwrap(), bytes);
        s.put("manifests/c1/s1", b"manifest".to_vec())
            .await
            .unwrap();
        assert_eq!(s.get("manifests/c1/s1").await.unwrap(), b"manifest");
    }

    pub async fn accepts_empty_object(b: &impl Backend) {
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

    pub async fn get_range_returns_exactly_the_range(b: &impl Backend) {
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

    /// `put_file` keeps `put`'s contract: small and large (multipart on S3) files round
    /// trip, into a directory not made yet; the same bytes again succeed whichever way
    /// they come; other bytes are refused and leave the object as it was.
    pub async fn put_file_stores_a_file_as_put_stores_bytes(b: &impl Backend) {
        let s = b.store();
        let small = pattern(70_000, 4);
        s.put_file("manifests/c9/s1", spooled(&small))
            .await
            .unwrap();
        assert_eq!(s.get("manifests/c9/s1").await.unwrap(), small);
        let large = pattern(PACK_SIZE, 5);
        s.put_file("manifests/c9/s2", spooled(&large))
            .await
            .unwrap();
        assert_eq!(s.get("manifests/c9/s2").await.unwrap(), large);
        // Repeats: a file after a file, bytes after a file, a file after bytes.
        s.put_file("manifests/c9/s2", spooled(&large))
            .await
            .unwrap();
        s.put("manifests/c9/s1", small.clone()).await.unwrap();
        s.put("manifests/c9/s3", small.clone()).await.unwrap();
        s.put_file("manifests/c9/s3", spooled(&small))
            .await
            .unwrap();
        // Other bytes of the same length (differing only past the first part) and of
        // another length are refused.
        let mut changed = large.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(refused_overwrite(
            &s.put_file("manifests/c9/s2", spooled(&changed)).await
        ));
        assert!(refused_overwrite(
            &s.put_file("manifests/c9/s1", spooled(&small[1..])).await
        ));
        assert_eq!(s.get("manifests/c9/s2").await.unwrap(), large);
        assert_eq!(s.get("manifests/c9/s1").await.unwrap(), small);
        assert_eq!(
            listed(&*s, "manifests/c9/").await,
            ["manifests/c9/s1", "manifests/c9/s2", "manifests/c9/s3"]
        );
    }

    pub async fn rejects_range_past_the_end_or_inverted(b: &impl Backend) {
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

    pub async fn rejects_missing_object_with_not_found(b: &impl Backend) {
        let s = b.store();
        not_found(s.get("packs/c1/none").await, "packs/c1/none");
        not_found(s.get_range("packs/c1/none", 0, 10).await, "packs/c1/none");
        not_found(s.get_range("packs/c1/none", 0, 0).await, "packs/c1/none");
        assert_eq!(s.list("packs/c1/").await.unwrap(), vec![]);
    }

    pub async fn delete_removes_and_tolerates_missing_objects(b: &impl Backend) {
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
        // A deleted name can be written again.
        s.put("packs/c1/p1", pattern(20, 6)).await.unwrap();
        assert_eq!(s.get("packs/c1/p1").await.unwrap(), pattern(20, 6));
    }

    /// A put repeated with the same bytes (a retry whose first answer was lost)
    /// succeeds and leaves one object.
    pub async fn accepts_repeated_put_of_identical_bytes(b: &impl Backend) {
        let s = b.store();
        for (path, len) in [("manifests/c1/s1", 5000), ("packs/c1/large", PACK_SIZE)] {
            let bytes = pattern(len, 6);
            s.put(path, bytes.clone()).await.unwrap();
            s.put(path, bytes.clone()).await.unwrap();
            assert!(s.get(path).await.unwrap() == bytes, "{path}");
        }
        let listed = s.list("").await.unwrap();
        assert_eq!(listed.len(), 2);
    }

    /// Objects are written once: a second put of a name with other bytes is refused and
    /// the stored object stays as it was.
    pub async fn rejects_overwrite_with_other_bytes(b: &impl Backend) {
        let s = b.store();
        for (path, first, second) in [
            ("manifests/c1/s1", 5000, 100),
            ("manifests/c1/s2", 5000, 5000),
            ("packs/c1/large", PACK_SIZE, PACK_SIZE),
        ] {
            s.put(path, pattern(first, 6)).await.unwrap();
            let r = s.put(path, pattern(second, 7)).await;
            assert!(refused_overwrite(&r), "{path}: {r:?}");
            let msg = backend_error(r);
            assert!(msg.contains(path), "{msg}");
            assert!(s.get(path).await.unwrap() == pattern(first, 6), "{path}");
        }
        let sizes: Vec<u64> = s.list("").await.unwrap().iter().map(|m| m.size).collect();
        assert_eq!(sizes, [5000, 5000, PACK_SIZE as u64]);
    }

    /// Two puts of one name with different bytes at once: exactly one wins, the other
    /// is refused, and readers find the winner's bytes whole.
    pub async fn concurrent_puts_of_one_name_leave_one_whole_object<B: Backend>(b: &B) {
        let s = b.store();
        for (path, len) in [("packs/c1/small", 1 << 20), ("packs/c1/large", PACK_SIZE)] {
            let versions = [pattern(len, 8), pattern(len, 9)];
            let tasks: Vec<_> = versions
                .iter()
                .map(|v| {
                    let (s, v, path) = (s.clone(), v.clone(), path.to_owned());
                    tokio::spawn(async move { s.put(&path, v).await })
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap());
            }
            let won: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
            let stored = s.get(path).await.unwrap();
            if len > 8 << 20 && !B::ATOMIC_MULTIPART_CREATE {
                // Both may win here; still no other error, and one whole version.
                assert!(!won.is_empty(), "{path}: {results:?}");
                assert!(
                    results.iter().all(|r| r.is_ok() || refused_overwrite(r)),
                    "{path}: {results:?}"
                );
                assert!(
                    stored == versions[0] || stored == versions[1],
                    "{path}: a mixture"
                );
                continue;
            }
            assert_eq!(won.len(), 1, "{path}: {results:?}");
            let lost = 1 - won[0];
            assert!(refused_overwrite(&results[lost]), "{path}: {results:?}");
            assert!(stored == versions[won[0]], "{path}");
        }
    }

    pub async fn list_returns_objects_under_a_prefix_only(b: &impl Backend) {
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
            // File and S3 times have second precision at worst; allow for it.
            assert!(
                (before - 1..=after + 1).contains(&m.modified_unix),
                "{m:?} not within {before}..={after}"
            );
        }
        assert_eq!(s.list("packs/").await.unwrap().len(), 3);
        assert_eq!(s.list("").await.unwrap().len(), 4);
        assert_eq!(s.list("packs/c2/").await.unwrap(), vec![]);
    }

    /// More objects than one page of an S3 listing (1000): all of them, once each.
    pub async fn list_returns_every_object_past_one_page(b: &impl Backend) {
        let s = b.store();
        let count = 1005;
        futures_util::stream::iter(0..count)
            .for_each_concurrent(16, |n| {
                let s = s.clone();
                async move {
                    s.put(&format!("packs/c1/p{n:05}"), vec![n as u8])
                        .await
                        .unwrap()
                }
            })
            .await;
        s.put("manifests/c1/s1", vec![1]).await.unwrap();
        let listed = s.list("packs/c1/").await.unwrap();
        let names: Vec<String> = listed.iter().map(|m| m.path.clone()).collect();
        let expected: Vec<String> = (0..count).map(|n| format!("packs/c1/p{n:05}")).collect();
        assert_eq!(names, expected);
        assert!(listed.iter().all(|m| m.size == 1));
    }

    pub async fn rejects_invalid_names_and_prefixes(b: &impl Backend) {
        let s = b.store();
        for name in [
            "",
            "../escape",
            "packs/../../escape",
            "packs//p",
            "/packs/p",
            "packs/p#1",
            "packs/p?x=1",
            "packs/p%2F",
        ] {
            backend_error(s.put(name, vec![1]).await);
            backend_error(s.get(name).await);
            backend_error(s.get_range(name, 0, 1).await);
            backend_error(s.delete(name).await);
        }
        // A prefix is directory-like: empty or ending in '/'.
        backend_error(s.list("packs/c1").await);
        backend_error(s.list("../").await);
        assert_eq!(s.list("").await.unwrap(), vec![]);
    }

    /// A pack-sized object (a multipart upload on S3) reads back byte for byte, whole
    /// and in ranges across part boundaries.
    pub async fn accepts_large_object(b: &impl Backend) {
        let s = b.store();
        let bytes = pattern(PACK_SIZE, 9);
        s.put("packs/c1/large", bytes.clone()).await.unwrap();
        let back = s.get("packs/c1/large").await.unwrap();
        assert!(
            back == bytes,
            "the {PACK_SIZE}-byte object did not read back equal"
        );
        let boundary = 8u64 << 20;
        for (start, end) in [
            (boundary - 10, boundary + 10),
            (PACK_SIZE as u64 - 4096, PACK_SIZE as u64),
        ] {
            let got = s.get_range("packs/c1/large", start, end).await.unwrap();
            assert_eq!(got, bytes[start as usize..end as usize], "{start}..{end}");
        }
        assert_eq!(s.list("packs/c1/").await.unwrap()[0].size, PACK_SIZE as u64);
    }

    pub async fn accepts_concurrent_puts_of_different_objects(b: &impl Backend) {
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

    /// While a task writes large objects (multipart on S3), every read of them finds
    /// nothing or a whole object, never a part or a prefix.
    pub async fn readers_never_see_a_partial_object(b: &impl Backend) {
        let s = b.store();
        let names: Vec<String> = (0..3).map(|n| format!("packs/c1/hot{n}")).collect();
        let bytes = pattern(10 << 20, 10);
        for name in &names {
            not_found(s.get(name).await, name);
        }
        let (go, ready) = tokio::sync::oneshot::channel::<()>();
        let writer = {
            let (s, names, bytes) = (s.clone(), names.clone(), bytes.clone());
            tokio::spawn(async move {
                ready.await.unwrap();
                for name in &names {
                    s.put(name, bytes.clone()).await.unwrap();
                }
            })
        };
        go.send(()).unwrap();
        while !writer.is_finished() {
            for name in &names {
                match s.get(name).await {
                    Err(BlobError::NotFound(_)) => {}
                    Ok(got) => assert!(
                        got == bytes,
                        "read {} bytes of {name}, not the object",
                        got.len()
                    ),
                    Err(e) => panic!("{name}: {e}"),
                }
            }
        }
        writer.await.unwrap();
        for name in &names {
            assert!(s.get(name).await.unwrap() == bytes, "{name}");
        }
    }
}

// ----- S3

/// An endpoint nothing listens on: every operation fails, in bounded time, with a
/// backend error that names the operation, the object and the endpoint.
#[tokio::test]
async fn s3_rejects_unreachable_endpoint_naming_it() {
    let port = testkit::free_port().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = ObjectBlobStore::s3(&S3Config {
        bucket: "unreachable".into(),
        endpoint: Some(endpoint.clone()),
        access_key_id: Some("AKIDTEST".into()),
        secret_access_key: Some("s3cr3t-never-shown".to_owned().into()),
        allow_http: true,
        ..S3Config::default()
    })
    .unwrap();
    let checks: [(&str, Result<(), BlobError>); 4] = [
        ("writing", store.put("packs/c1/p1", vec![1; 10]).await),
        ("reading", store.get("packs/c1/p1").await.map(|_| ())),
        ("listing", store.list("packs/").await.map(|_| ())),
        ("deleting", store.delete("packs/c1/p1").await),
    ];
    for (op, r) in checks {
        match r {
            Err(BlobError::Backend { path, reason }) => {
                assert!(path.starts_with("packs/"), "{op}: {path}");
                assert!(reason.starts_with(op), "{op}: {reason}");
                assert!(
                    reason.contains(&format!("127.0.0.1:{port}")),
                    "{op}: {reason}"
                );
                assert!(reason.contains("Connection refused"), "{op}: {reason}");
                assert!(!reason.contains("s3cr3t"), "{op}: {reason}");
            }
            other => panic!("{op}: expected a backend error, got {other:?}"),
        }
    }
}

/// A prefix keeps every object under it: another store on the same bucket without
/// the prefix sees them there, and the prefixed store lists names without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keeps_objects_under_the_prefix() {
    let config = moto_config().await;
    let prefixed = ObjectBlobStore::s3(&S3Config {
        prefix: Some("tenants/a/".into()),
        ..config.clone()
    })
    .unwrap();
    let whole = ObjectBlobStore::s3(&config).unwrap();
    prefixed.put("packs/c1/p1", pattern(100, 1)).await.unwrap();
    whole.put("packs/c1/p2", pattern(100, 2)).await.unwrap();
    let names = |v: Vec<headlock_core::blob::BlobMeta>| -> Vec<String> {
        v.into_iter().map(|m| m.path).collect()
    };
    assert_eq!(names(prefixed.list("").await.unwrap()), ["packs/c1/p1"]);
    assert_eq!(
        names(whole.list("").await.unwrap()),
        ["packs/c1/p2", "tenants/a/packs/c1/p1"]
    );
    assert_eq!(
        whole.get("tenants/a/packs/c1/p1").await.unwrap(),
        pattern(100, 1)
    );
    for path in ["packs/c1/p2", "tenants/a/packs/c1/p1"] {
        whole.delete(path).await.unwrap();
    }
}

/// Not a test but a measurement: pack-sized puts and gets against moto on loopback,
/// printed as MB/s (`cargo test -p headlock-store --test blob_conformance
/// s3_pack_throughput -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn s3_pack_throughput() {
    let store = ObjectBlobStore::s3(&moto_config().await).unwrap();
    let bytes = pattern(24 << 20, 1);
    let rounds = 5;
    let (mut put, mut get) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for n in 0..rounds {
        let path = format!("packs/c1/p{n}");
        let start = std::time::Instant::now();
        store.put(&path, bytes.clone()).await.unwrap();
        put += start.elapsed();
        let start = std::time::Instant::now();
        let back = store.get(&path).await.unwrap();
        get += start.elapsed();
        assert!(back == bytes);
        store.delete(&path).await.unwrap();
    }
    let mb = (rounds * bytes.len()) as f64 / 1e6;
    println!(
        "24 MiB objects to moto on loopback: put {:.0} MB/s, get {:.0} MB/s ({rounds} of each)",
        mb / put.as_secs_f64(),
        mb / get.as_secs_f64()
    );
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
    store.put("packs/c1/p1", pattern(1000, 1)).await.unwrap();
    assert!(store.put("packs/c1/p1", pattern(500, 2)).await.is_err());
    store.put("manifests/c1/s1", pattern(10, 3)).await.unwrap();
    store
        .put_file("manifests/c2/s2", spooled(&pattern(3000, 4)))
        .await
        .unwrap();
    assert!(
        store
            .put_file("manifests/c2/s2", spooled(&pattern(3000, 5)))
            .await
            .is_err()
    );
    assert_eq!(
        files_under(&root),
        ["manifests/c1/s1", "manifests/c2/s2", "packs/c1/p1"]
    );
    assert_eq!(
        std::fs::read(root.join("manifests/c2/s2")).unwrap(),
        pattern(3000, 4)
    );
    assert_eq!(
        std::fs::read(root.join("packs/c1/p1")).unwrap(),
        pattern(1000, 1)
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
    // A file is refused the same way.
    let err = store
        .put_file("manifests/c1/large", spooled(&pattern(2 << 20, 4)))
        .await
        .unwrap_err();
    assert_eq!(err, BlobError::NoSpace("manifests/c1/large".into()));
    assert!(
        !files_under(&root).iter().any(|f| f.contains('#')),
        "{:?}",
        files_under(&root)
    );
    store
        .put("packs/c1/next", pattern(500_000, 3))
        .await
        .unwrap();
    assert_eq!(
        store.get("packs/c1/next").await.unwrap(),
        pattern(500_000, 3)
    );
}
