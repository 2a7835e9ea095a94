//! [`BlobStore`] on the `object_store` crate: packs and manifests as named objects, in a
//! local directory today (`./headlock-data/chunks` by default) and behind S3 later, with
//! the same type ([`ObjectBlobStore`]) and the same conformance suite
//! (`tests/blob_conformance.rs`).
//!
//! # What a successful `put` guarantees (local directory)
//!
//! The local backend is `object_store`'s `LocalFileSystem` built with `with_fsync(true)`.
//! Reading its source (version 0.14.2, `src/local.rs`: `put_opts`, `new_staged_upload`,
//! `finish_staged_rename`, `create_parent_dirs`), a put
//!
//! 1. writes the bytes to a staging file `<object>#<n>` in the object's directory (created
//!    with `O_CREAT | O_EXCL`, so two writers never share one);
//! 2. `fsync`s the staging file, closes it and checks the close;
//! 3. `rename`s it over `<object>` (atomic on POSIX: a reader sees the old object or the
//!    new one, never a mixture or a prefix);
//! 4. `fsync`s the object's directory, so the rename itself is on disk; directories the
//!    put had to create are `fsync`ed up to the first one that already existed.
//!
//! So once `put` returns, the object's bytes and its name survive a crash or a power
//! loss; if the process dies before that, the object is either absent or the previous
//! version, and at worst a staging file is left behind. Staging files are invisible to
//! `get` and `list` (object_store skips names ending in `#<digits>`, and this module never
//! accepts a `#` in an object name), and [`ObjectBlobStore::remove_staging_files`]
//! removes them; the service calls it at start, before any backup runs.
//!
//! That is enough for the write protocol of docs/design.md ("Writing a snapshot"): packs
//! and the manifest are put, and so durable, *before* the one metadata transaction that
//! makes the snapshot visible; a crash at any point before that transaction leaves only
//! objects nothing refers to, which garbage collection deletes. Deletes are not
//! `fsync`ed: a delete lost in a crash brings back an object nothing refers to, which the
//! next collection deletes again.
//!
//! No `fsync` of our own is added on top: object_store already does all of the above, and
//! doing it twice would only cost time. Should a future object_store drop `with_fsync`,
//! this module stops compiling rather than silently losing durability.
//!
//! # Names
//!
//! Object names are checked before any I/O ([`MAX_PATH_LEN`] bytes at most; `/`-separated
//! segments of ASCII letters, digits, `.`, `_` and `-`; no empty, `.` or `..` segment), so
//! a name can neither leave the store's directory nor mean different objects on different
//! backends. Headlock's own names are `packs/<cluster>/<pack>` and
//! `manifests/<cluster>/<snapshot>`.
//!
//! # Errors
//!
//! A full disk (or quota), found anywhere in the error's source chain as `ENOSPC` or
//! `EDQUOT`, is [`BlobError::NoSpace`]; a missing object is [`BlobError::NotFound`];
//! everything else is [`BlobError::Backend`] with the operation, the object and the
//! backend's reason. A failed put removes its staging file, so nothing already stored is
//! harmed and the space is given back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use headlock_core::blob::{BlobError, BlobMeta, BlobStore};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The local directory the service uses when none is configured.
pub const DEFAULT_LOCAL_DIR: &str = "headlock-data/chunks";

/// The longest object name accepted, in bytes (S3 allows 1024).
pub const MAX_PATH_LEN: usize = 1024;

/// The name the service uses for the local default; the same type serves any backend.
pub type LocalBlobStore = ObjectBlobStore;

/// A [`BlobStore`] on any `object_store` backend. Cheap to clone.
#[derive(Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store: for [`ObjectBlobStore::remove_staging_files`].
    local_root: Option<PathBuf>,
    /// Where the objects are, for logs and `Debug`.
    description: String,
}

impl fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("at", &self.description)
            .finish_non_exhaustive()
    }
}

impl ObjectBlobStore {
    /// A store in the local directory `dir`, created (with its missing parents) with mode
    /// 0700 when missing; every put is atomic and durable (see the module docs).
    ///
    /// Warns when an existing `dir` is accessible to other users (object contents are
    /// encrypted, but their names and sizes are not).
    pub fn local(dir: impl AsRef<Path>) -> Result<ObjectBlobStore, BlobError> {
        let dir = dir.as_ref();
        let shown = dir.display().to_string();
        let failed = |what: &str, e: &dyn fmt::Display| BlobError::Backend {
            path: shown.clone(),
            reason: format!("{what}: {e}"),
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| {
            if is_no_space_io(&e) {
                BlobError::NoSpace(shown.clone())
            } else {
                failed("creating the directory", &e)
            }
        })?;
        let root = dir
            .canonicalize()
            .map_err(|e| failed("resolving the directory", &e))?;
        // The directory's own name must be durable too before objects in it are.
        if let Some(parent) = root.parent() {
            sync_dir(parent).map_err(|e| failed("syncing the parent directory", &e))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&root)
                .map_err(|e| failed("reading the directory's mode", &e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %root.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "the chunk store directory is accessible to other users (chmod 700)"
                );
            }
        }
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| failed("opening the directory", &e))?
            .with_fsync(true);
        Ok(ObjectBlobStore {
            inner: Arc::new(fs),
            description: format!("local directory {}", root.display()),
            local_root: Some(root),
        })
    }

    /// A store on any other `object_store` backend (S3, in-memory for tests);
    /// `description` says where, for logs. The backend must make a successful put atomic
    /// and durable, as S3's PUT is.
    pub fn from_object_store(
        inner: Arc<dyn ObjectStore>,
        description: impl Into<String>,
    ) -> ObjectBlobStore {
        ObjectBlobStore {
            inner,
            local_root: None,
            description: description.into(),
        }
    }

    /// The directory of a local store, None for other backends.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Removes the staging files a crash left behind in a local store (files named
    /// `<object>#<digits>`) and returns how many; does nothing on other backends.
    ///
    /// Call it only while no put is running (at start): a running put's staging file
    /// looks the same.
    pub async fn remove_staging_files(&self) -> Result<u64, BlobError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        let shown = root.display().to_string();
        tokio::task::spawn_blocking(move || remove_staging_in(&root))
            .await
            .map_err(|e| BlobError::Backend {
                path: shown.clone(),
                reason: format!("removing staging files: {e}"),
            })?
            .map_err(|e| BlobError::Backend {
                path: shown,
                reason: format!("removing staging files: {e}"),
            })
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let location = object_path(path)?;
        self.inner
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|e| classify("writing", path, e))?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, BlobError> {
        let location = object_path(path)?;
        let found = self
            .inner
            .get(&location)
            .await
            .map_err(|e| classify("reading", path, e))?;
        let bytes = found
            .bytes()
            .await
            .map_err(|e| classify("reading", path, e))?;
        Ok(Vec::from(bytes))
    }

    async fn get_range(&self, path: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError> {
        let location = object_path(path)?;
        let op = format!("reading bytes {start}..{end}");
        if start > end {
            return Err(BlobError::Backend {
                path: path.to_owned(),
                reason: format!("{op}: the range ends before it starts"),
            });
        }
        if start == end {
            // Nothing to read, but a missing object is still NotFound.
            self.inner
                .head(&location)
                .await
                .map_err(|e| classify(&op, path, e))?;
            return Ok(Vec::new());
        }
        let bytes = self
            .inner
            .get_range(&location, start..end)
            .await
            .map_err(|e| classify(&op, path, e))?;
        // object_store shortens a range that runs past the end; a caller asking for a
        // record wants all of it or an error (a truncated pack).
        let got = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if got != end - start {
            return Err(BlobError::Backend {
                path: path.to_owned(),
                reason: format!(
                    "{op}: the object ends at byte {}",
                    start.saturating_add(got)
                ),
            });
        }
        Ok(Vec::from(bytes))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let location = if prefix.is_empty() {
            None
        } else {
            let Some(dir) = prefix.strip_suffix('/') else {
                return Err(BlobError::Backend {
                    path: prefix.to_owned(),
                    reason: "listing: a prefix must be empty or end with '/'".into(),
                });
            };
            Some(object_path(dir)?)
        };
        let mut found: Vec<BlobMeta> = self
            .inner
            .list(location.as_ref())
            .map_ok(|meta| BlobMeta {
                path: meta.location.to_string(),
                size: meta.size,
                modified_unix: meta.last_modified.timestamp(),
            })
            .try_collect()
            .await
            .map_err(|e| classify("listing", prefix, e))?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    async fn delete(&self, path: &str) -> Result<(), BlobError> {
        let location = object_path(path)?;
        match self.inner.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify("deleting", path, e)),
        }
    }
}

/// Checks an object name (see the module docs) and makes it an object_store path.
fn object_path(path: &str) -> Result<ObjectPath, BlobError> {
    let bad = |why: &str| BlobError::Backend {
        // Never echo an unbounded name back.
        path: path.chars().take(120).collect(),
        reason: format!("invalid object name: {why}"),
    };
    if path.is_empty() {
        return Err(bad("empty"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad(&format!("longer than {MAX_PATH_LEN} bytes")));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(bad("empty segment (leading, trailing or double '/')"));
        }
        if segment == "." || segment == ".." {
            return Err(bad("'.' or '..' segment"));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(bad(&format!(
                "character {c:?} (only ASCII letters, digits, '.', '_', '-' and '/')"
            )));
        }
    }
    ObjectPath::parse(path).map_err(|e| bad(&e.to_string()))
}

/// Maps an object_store error met while doing `op` on `path`.
fn classify(op: &str, path: &str, e: object_store::Error) -> BlobError {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return BlobError::NotFound(path.to_owned());
    }
    if is_no_space(&e) {
        return BlobError::NoSpace(path.to_owned());
    }
    BlobError::Backend {
        path: path.to_owned(),
        reason: format!("{op}: {e}"),
    }
}

/// Whether a full disk or quota is anywhere in the error's source chain.
fn is_no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if is_no_space_io(io) {
                return true;
            }
        }
        current = err.source();
    }
    false
}

fn is_no_space_io(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// `fsync` of a directory, so the names in it are durable (a no-op off Unix).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Whether a file name is an object_store staging name: `<name>#<digits>`.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes staging files under `root`, not following symbolic links.
fn remove_staging_in(root: &Path) -> std::io::Result<u64> {
    let mut removed = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_staging_name) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_headlock_object_names() {
        for name in [
            "packs/65a1b2c3d4e5f60718293a4b/65a1b2c3d4e5f60718293a4c",
            "manifests/c/s",
            "a",
            "a.b_c-d/E9",
        ] {
            assert_eq!(object_path(name).unwrap().as_ref(), name);
        }
    }

    #[test]
    fn rejects_names_that_escape_or_collide() {
        let long = "a".repeat(MAX_PATH_LEN + 1);
        for name in [
            "",
            "/packs/a",
            "packs/a/",
            "packs//a",
            "../a",
            "packs/./a",
            "packs/a#1",
            "packs/a b",
            "packs/\u{e9}",
            "packs\\a",
            long.as_str(),
        ] {
            assert!(
                matches!(object_path(name), Err(BlobError::Backend { .. })),
                "{name:?} was accepted"
            );
        }
    }

    #[test]
    fn recognises_staging_names() {
        assert!(is_staging_name("65a1b2c3d4e5f60718293a4c#1"));
        assert!(is_staging_name("x#12"));
        assert!(!is_staging_name("x#"));
        assert!(!is_staging_name("x#1a"));
        assert!(!is_staging_name("x"));
    }

    /// Durability rests on object_store's `with_fsync(true)`; this fails if the local
    /// store is ever built without it.
    #[test]
    fn local_store_fsyncs_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectBlobStore::local(dir.path().join("chunks")).unwrap();
        let shown = format!("{:?}", store.inner);
        assert!(shown.contains("fsync: true"), "{shown}");
    }

    #[test]
    fn finds_no_space_in_the_source_chain() {
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let wrapped = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(full),
        };
        assert_eq!(
            classify("writing", "packs/a/b", wrapped),
            BlobError::NoSpace("packs/a/b".into())
        );
        let other = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from_raw_os_error(5)), // EIO
        };
        assert!(matches!(
            classify("writing", "packs/a/b", other),
            BlobError::Backend { .. }
        ));
    }
}
