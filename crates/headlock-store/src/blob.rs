//! [`BlobStore`] on the `object_store` crate: packs and manifests as named objects, in a
//! local directory (`./headlock-data/chunks` by default) or in an S3 bucket ([`s3`]
//! module: [`ObjectBlobStore::s3`], [`S3Config`]), with the same type
//! ([`ObjectBlobStore`]) and the same conformance suite (`tests/blob_conformance.rs`),
//! which every backend runs.
//!
//! # Objects are written once
//!
//! The service never writes a name twice: packs and manifests are named after fresh ids.
//! Every put is therefore a *create* (object_store's `PutMode::Create`: `If-None-Match:
//! *` on S3, a hard link that fails on an existing name in a directory), so a second
//! write of one name, which can only be a bug or a retry, never silently replaces an
//! object that a snapshot may already refer to:
//!
//! * a put of a name that holds the very same bytes succeeds and changes nothing (so a
//!   retry of a put whose first answer was lost is harmless);
//! * a put of a name that holds other bytes fails with [`BlobError::Backend`] ("already
//!   exists with other contents") and leaves the stored object as it was;
//! * of two puts of one name racing each other with different bytes, one succeeds and
//!   the other fails as above; a reader sees no object or the winner's whole object.
//!
//! # What a successful `put` guarantees (local directory)
//!
//! The local backend is `object_store`'s `LocalFileSystem` built with `with_fsync(true)`.
//! Reading its source (version 0.14.2, `src/local.rs`: `put_opts`, `new_staged_upload`,
//! `finish_staged_hard_link`, `hard_link`), a put
//!
//! 1. writes the bytes to a staging file `<object>#<n>` in the object's directory (created
//!    with `O_CREAT | O_EXCL`, so two writers never share one; missing directories are
//!    created and `fsync`ed up to the first one that already existed);
//! 2. `fsync`s the staging file, closes it and checks the close;
//! 3. hard-links it as `<object>` (atomic, and refused with `EEXIST` when the name
//!    exists: a reader sees no object or the whole object, never a prefix);
//! 4. `fsync`s the object's directory, so the new name is on disk; then removes the
//!    staging name.
//!
//! [`BlobStore::put_file`] (a manifest, spooled to a file by the service) does the very
//! same steps itself (`create_local_file`): object_store's own multipart upload to a
//! local directory renames its staging file into place, which would replace an
//! existing object, so it is not used there. On S3 a file up to the multipart threshold
//! goes up in one conditional PUT, a larger one as a multipart upload read from the
//! file a part at a time ([`s3`]); a name found taken is compared with the file a part
//! at a time too.
//!
//! So once `put` returns, the object's bytes and its name survive a crash or a power
//! loss; if the process dies before that, the object is absent, and at worst a staging
//! file is left behind. Staging files are invisible to `get` and `list` (object_store
//! skips names ending in `#<digits>`, and this module never accepts a `#` in an object
//! name), and [`ObjectBlobStore::remove_staging_files`] removes them; the service calls it
//! at start, before any backup runs. The directory must support hard links (every Unix
//! file system a data directory lives on does; a put on one that does not fails loudly).
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
//! everything else is [`BlobError::Backend`] with the object, and a reason naming the
//! operation, where the store is (directory, or bucket and endpoint) and what the backend
//! said, cut to [`MAX_REASON_LEN`] bytes. No error carries credentials (object_store
//! never prints them, and nothing here does). A failed put removes its staging file (or
//! aborts its multipart upload), so nothing already stored is harmed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use headlock_core::blob::{BlobError, BlobMeta, BlobStore};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub mod s3;

pub use s3::S3Config;

/// The local directory the service uses when none is configured.
pub const DEFAULT_LOCAL_DIR: &str = "headlock-data/chunks";

/// The longest object name accepted, in bytes (S3 allows 1024).
pub const MAX_PATH_LEN: usize = 1024;

/// The longest [`BlobError::Backend`] reason, in bytes: a backend's error body (S3 sends
/// XML) is cut there.
pub const MAX_REASON_LEN: usize = 2048;

/// How often a put that met an existing name which then turned out to be absent is tried
/// again. S3 answers `409 ConflictingOperation` to a conditional write while another one
/// of the same name is in flight; if that one then fails, the name is free again.
const CONFLICT_RETRIES: u32 = 3;

/// How much of an object already there is read at a time to compare it with a put's.
const COMPARE_PART: usize = 8 << 20;

/// The name the service uses for the local default; the same type serves any backend.
pub type LocalBlobStore = ObjectBlobStore;

/// How objects above a size go up in parts (S3).
#[derive(Debug, Clone, Copy)]
struct Multipart {
    /// Objects larger than this go up as a multipart upload; smaller ones in one request.
    threshold: usize,
    /// Every part but the last has this size (S3 wants at least 5 MiB).
    part_size: usize,
    /// Parts in flight at once, per object.
    parallel: usize,
}

/// A [`BlobStore`] on any `object_store` backend. Cheap to clone.
#[derive(Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory of a local store: for [`ObjectBlobStore::remove_staging_files`].
    local_root: Option<PathBuf>,
    /// Where the objects are, for logs, errors and `Debug` (never credentials).
    description: String,
    /// None: every object goes up in one request.
    multipart: Option<Multipart>,
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
            multipart: None,
        })
    }

    /// A store on any other `object_store` backend (in-memory for tests, say);
    /// `description` says where, for logs and errors. The backend must make a successful
    /// put atomic and durable, as S3's PUT is, and support `PutMode::Create`. Every
    /// object goes up in one request; [`ObjectBlobStore::s3`] is the way to S3.
    pub fn from_object_store(
        inner: Arc<dyn ObjectStore>,
        description: impl Into<String>,
    ) -> ObjectBlobStore {
        ObjectBlobStore {
            inner,
            local_root: None,
            description: description.into(),
            multipart: None,
        }
    }

    /// The directory of a local store, None for other backends.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Where the objects are (a directory, or a bucket and endpoint), as errors and logs
    /// name it.
    pub fn description(&self) -> &str {
        &self.description
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

    /// Maps an object_store error met while doing `op` on `path` (see the module docs).
    fn fail(&self, op: &str, path: &str, e: object_store::Error) -> BlobError {
        classify(op, path, &self.description, e)
    }

    /// One attempt at creating `location` with `source`: one conditional PUT, a
    /// multipart upload whose completion is conditional (see [`s3`]), or, for a file
    /// into a local store, a staged copy hard-linked into place ([`create_local_file`]).
    async fn create(&self, location: &ObjectPath, source: &Source) -> object_store::Result<()> {
        match (self.multipart, source) {
            (Some(m), _) if source.len() > m.threshold as u64 => {
                self.create_multipart(location, source, m).await
            }
            (_, Source::File(file)) if self.local_root.is_some() => {
                let root = self.local_root.clone().expect("a local store");
                let (file, location) = (file.clone(), location.clone());
                tokio::task::spawn_blocking(move || create_local_file(&root, &location, &file))
                    .await
                    .map_err(|e| local_error(std::io::Error::other(e)))?
            }
            _ => {
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let bytes = source.slice(0, source.len()).await.map_err(local_error)?;
                self.inner
                    .put_opts(location, PutPayload::from(bytes), options)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// A multipart upload of `source` in parts of `m.part_size`, at most `m.parallel`
    /// read and in flight at a time; aborted (best effort) when any part or the
    /// completion fails.
    async fn create_multipart(
        &self,
        location: &ObjectPath,
        source: &Source,
        m: Multipart,
    ) -> object_store::Result<()> {
        let mut upload = self.inner.put_multipart(location).await?;
        let uploaded: object_store::Result<()> = async {
            let mut in_flight = futures_util::stream::FuturesUnordered::new();
            let len = source.len();
            let mut start = 0u64;
            while start < len {
                let end = len.min(start + m.part_size as u64);
                let part = source.slice(start, end).await.map_err(local_error)?;
                // Parts are numbered in the order put_part is called.
                in_flight.push(upload.put_part(PutPayload::from(part)));
                if in_flight.len() >= m.parallel {
                    in_flight.next().await.transpose()?;
                }
                start = end;
            }
            while in_flight.next().await.transpose()?.is_some() {}
            Ok(())
        }
        .await;
        let done = match uploaded {
            Ok(()) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            // NotFound: the upload is gone already (a completion that succeeded but whose
            // answer was lost, found out by its retry).
            if let Err(abort) = upload.abort().await
                && !matches!(abort, object_store::Error::NotFound { .. })
            {
                // The parts stay billed until a lifecycle rule removes them (see s3).
                tracing::warn!(
                    object = %location,
                    at = %self.description,
                    error = %abort,
                    "could not abort a failed multipart upload"
                );
            }
            return Err(e);
        }
        Ok(())
    }

    /// After a create found `path` taken: whether it holds exactly `wanted` (compared
    /// a part at a time, so neither side is held whole).
    async fn existing(
        &self,
        location: &ObjectPath,
        path: &str,
        wanted: &Source,
    ) -> Result<Existing, BlobError> {
        let op = "writing (checking the object already there)";
        let meta = match self.inner.head(location).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(Existing::Missing),
            Err(e) => return Err(self.fail(op, path, e)),
        };
        if meta.size != wanted.len() {
            return Ok(Existing::Different(meta.size));
        }
        let mut start = 0u64;
        while start < meta.size {
            let end = meta.size.min(start + COMPARE_PART as u64);
            let found = match self.inner.get_range(location, start..end).await {
                Ok(found) => found,
                Err(object_store::Error::NotFound { .. }) => return Ok(Existing::Missing),
                Err(e) => return Err(self.fail(op, path, e)),
            };
            let ours = wanted
                .slice(start, end)
                .await
                .map_err(|e| self.fail(op, path, local_error(e)))?;
            if found != ours {
                return Ok(Existing::Different(meta.size));
            }
            start = end;
        }
        Ok(Existing::Same)
    }
}

/// What a put writes: bytes in memory, or a file read a part at a time.
#[derive(Clone)]
enum Source {
    Bytes(Bytes),
    /// The file and its length (taken once, at the start of the put).
    File(Arc<SourceFile>),
}

/// A file a put reads from, one reader at a time.
struct SourceFile {
    file: std::sync::Mutex<std::fs::File>,
    len: u64,
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::File(f) => f.len,
        }
    }

    /// Bytes `start..end` (within the source).
    async fn slice(&self, start: u64, end: u64) -> std::io::Result<Bytes> {
        match self {
            Source::Bytes(b) => Ok(b.slice(start as usize..end as usize)),
            Source::File(f) => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || f.read(start, end))
                    .await
                    .map_err(std::io::Error::other)?
            }
        }
    }
}

impl SourceFile {
    fn read(&self, start: u64, end: u64) -> std::io::Result<Bytes> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("a reader of the file panicked"))?;
        file.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; usize::try_from(end - start).map_err(std::io::Error::other)?];
        file.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }
}

/// An I/O error of this module's own (reading a source file, writing a local object)
/// as object_store would report it, so that [`classify`] sees a full disk and
/// [`is_taken`] an existing name.
fn local_error(e: std::io::Error) -> object_store::Error {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        return object_store::Error::AlreadyExists {
            path: String::new(),
            source: Box::new(e),
        };
    }
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    }
}

/// Where `location` is in the local store at `root` (each part of its name a path
/// component, as object_store's `LocalFileSystem` maps it).
fn local_file(root: &Path, location: &ObjectPath) -> PathBuf {
    location
        .parts()
        .fold(root.to_path_buf(), |p, part| p.join(part.as_ref()))
}

/// Bytes `start..end` of `location` in the local store at `root`, fewer if the file
/// ends first, read into a `Vec` of that capacity without zeroing it (std's `File`
/// reads into spare capacity). A missing file is `NotFound`, as object_store says.
fn read_local_range(
    root: &Path,
    location: &ObjectPath,
    start: u64,
    end: u64,
) -> object_store::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(local_file(root, location)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(e),
        },
        _ => local_error(e),
    })?;
    file.seek(SeekFrom::Start(start)).map_err(local_error)?;
    let len = end - start;
    let mut bytes = Vec::with_capacity(
        usize::try_from(len)
            .map_err(|_| local_error(std::io::Error::other(format!("a range of {len} bytes"))))?,
    );
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(local_error)?;
    Ok(bytes)
}

/// Creates `location` in the local store at `root` with the contents of `source`,
/// exactly as object_store's create does (see the module docs): a staging file
/// `<object>#<n>` (created exclusively; missing directories created and their names
/// `fsync`ed), the contents copied in and `fsync`ed, hard-linked as the object
/// (`AlreadyExists` when the name is taken), the directory `fsync`ed, the staging
/// name removed (also when anything failed).
fn create_local_file(
    root: &Path,
    location: &ObjectPath,
    source: &SourceFile,
) -> object_store::Result<()> {
    use std::io::{Seek, SeekFrom};
    let dest = local_file(root, location);
    let dir = dest.parent().unwrap_or(root).to_path_buf();
    let mut missing = Vec::new();
    let mut d = dir.as_path();
    while d != root && !d.exists() {
        missing.push(d.to_path_buf());
        d = d.parent().unwrap_or(root);
    }
    std::fs::create_dir_all(&dir).map_err(local_error)?;
    for created in missing.iter().rev() {
        sync_dir(created.parent().unwrap_or(root)).map_err(local_error)?;
    }
    let mut n = 1u32;
    let (mut staging, staged) = loop {
        let mut name = dest.clone().into_os_string();
        name.push(format!("#{n}"));
        let staged = PathBuf::from(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staged)
        {
            Ok(f) => break (f, staged),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(local_error(e)),
        }
    };
    let result = (|| {
        let mut file = source
            .file
            .lock()
            .map_err(|_| std::io::Error::other("a reader of the file panicked"))?;
        file.seek(SeekFrom::Start(0))?;
        let copied = std::io::copy(&mut *file, &mut staging)?;
        if copied != source.len {
            return Err(std::io::Error::other(format!(
                "the file changed while it was stored ({copied} bytes, not {})",
                source.len
            )));
        }
        staging.sync_all()?;
        drop(staging);
        std::fs::hard_link(&staged, &dest)?;
        sync_dir(&dir)
    })();
    if let Err(e) = std::fs::remove_file(&staged)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %staged.display(), error = %e, "cannot remove a staging file; the next start will");
    }
    result.map_err(local_error)
}

/// What a name that a create found taken holds.
enum Existing {
    /// The bytes the create wanted to write.
    Same,
    /// Other bytes (this many).
    Different(u64),
    /// Nothing any more (deleted, or a conflicting write that did not complete).
    Missing,
}

/// Whether a create failed because the name is taken (or, on S3, being written).
fn is_taken(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }
    )
}

/// Why one try of a put failed.
enum PutFailed {
    /// The name was taken, but no object is there now (a conflicting write in flight
    /// that then failed): the name may be free on the next try.
    Vanished(object_store::Error),
    /// Anything else: the answer.
    Final(BlobError),
}

impl PutFailed {
    fn is_transient(&self) -> bool {
        matches!(self, PutFailed::Vanished(_))
    }
}

impl From<BlobError> for PutFailed {
    fn from(e: BlobError) -> Self {
        PutFailed::Final(e)
    }
}

impl ObjectBlobStore {
    /// [`BlobStore::put`] and [`BlobStore::put_file`]: creates the object, tried again
    /// while a conflicting write settles.
    async fn put_source(&self, path: &str, source: Source) -> Result<(), BlobError> {
        let location = object_path(path)?;
        // 100, 200, 400 ms between the tries, as the conflicting write settles.
        let pauses = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_factor(2.0)
            .with_max_times(CONFLICT_RETRIES as usize);
        (|| self.put_once(&location, path, &source))
            .retry(pauses)
            .when(PutFailed::is_transient)
            .await
            .map_err(|failed| match failed {
                PutFailed::Vanished(e) => self.fail("writing", path, e),
                PutFailed::Final(e) => e,
            })
    }

    /// One try of [`BlobStore::put`]: create the object; if the name is taken, the same
    /// bytes there are success, other bytes a refusal.
    async fn put_once(
        &self,
        location: &ObjectPath,
        path: &str,
        source: &Source,
    ) -> Result<(), PutFailed> {
        let e = match self.create(location, source).await {
            Ok(()) => return Ok(()),
            Err(e) if is_taken(&e) => e,
            Err(e) => return Err(self.fail("writing", path, e).into()),
        };
        match self.existing(location, path, source).await? {
            Existing::Same => {
                tracing::info!(
                    object = path,
                    at = %self.description,
                    "the object was already stored with the same bytes (a repeated put)"
                );
                Ok(())
            }
            Existing::Different(size) => Err(BlobError::Backend {
                path: path.to_owned(),
                reason: format!(
                    "writing ({}): the object already exists with other contents \
                     ({size} bytes; {} were to be written), and objects are never \
                     replaced",
                    self.description,
                    source.len()
                ),
            }
            .into()),
            Existing::Missing => Err(PutFailed::Vanished(e)),
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    /// Creates the object (see the module docs: a name is written once; the same bytes
    /// again succeed, other bytes are refused).
    async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.put_source(path, Source::Bytes(Bytes::from(bytes)))
            .await
    }

    /// Creates the object from a file, as `put` does from bytes: in a local store a
    /// staged copy hard-linked into place; on S3 one PUT up to the multipart threshold,
    /// else a multipart upload read from the file a part at a time.
    async fn put_file(&self, path: &str, file: std::fs::File) -> Result<(), BlobError> {
        let len = file
            .metadata()
            .map_err(|e| self.fail("writing", path, local_error(e)))?
            .len();
        let source = Source::File(Arc::new(SourceFile {
            file: std::sync::Mutex::new(file),
            len,
        }));
        self.put_source(path, source).await
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, BlobError> {
        let location = object_path(path)?;
        let found = self
            .inner
            .get(&location)
            .await
            .map_err(|e| self.fail("reading", path, e))?;
        let bytes = found
            .bytes()
            .await
            .map_err(|e| self.fail("reading", path, e))?;
        Ok(Vec::from(bytes))
    }

    /// A ranged read (one ranged GET on S3).
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
                .map_err(|e| self.fail(&op, path, e))?;
            return Ok(Vec::new());
        }
        let bytes = match &self.local_root {
            // A local file is read straight into the Vec returned: object_store's local
            // read zeroes its buffer before reading into it (3.5 % of the service's CPU
            // in a restore), and its Bytes would be copied or converted after.
            Some(root) => {
                let (root, at) = (root.clone(), location.clone());
                tokio::task::spawn_blocking(move || read_local_range(&root, &at, start, end))
                    .await
                    .map_err(|e| local_error(std::io::Error::other(e)))
                    .and_then(|read| read)
            }
            None => self
                .inner
                .get_range(&location, start..end)
                .await
                .map(Vec::from),
        }
        .map_err(|e| self.fail(&op, path, e))?;
        // object_store shortens a range that runs past the end (and so does the local
        // read); a caller asking for a record wants all of it or an error (a truncated
        // pack).
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
        Ok(bytes)
    }

    async fn size(&self, path: &str) -> Result<Option<u64>, BlobError> {
        let location = object_path(path)?;
        match self.inner.head(&location).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail("reading the size", path, e)),
        }
    }

    /// Every object under `prefix`, sorted by name (S3 listings are paged by object_store).
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
            .map_err(|e| self.fail("listing", prefix, e))?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    async fn delete(&self, path: &str) -> Result<(), BlobError> {
        let location = object_path(path)?;
        match self.inner.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail("deleting", path, e)),
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
    check_name(path).map_err(|why| bad(&why))?;
    ObjectPath::parse(path).map_err(|e| bad(&e.to_string()))
}

/// Why `path` is not an acceptable object name (or prefix), if it is not.
fn check_name(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty".into());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(format!("longer than {MAX_PATH_LEN} bytes"));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err("empty segment (leading, trailing or double '/')".into());
        }
        if segment == "." || segment == ".." {
            return Err("'.' or '..' segment".into());
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "character {c:?} (only ASCII letters, digits, '.', '_', '-' and '/')"
            ));
        }
    }
    Ok(())
}

/// Maps an object_store error met while doing `op` on `path` in the store at `at`.
fn classify(op: &str, path: &str, at: &str, e: object_store::Error) -> BlobError {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return BlobError::NotFound(path.to_owned());
    }
    if is_no_space(&e) {
        return BlobError::NoSpace(path.to_owned());
    }
    BlobError::Backend {
        path: path.to_owned(),
        reason: bounded(format!("{op} ({at}): {}", with_causes(&e))),
    }
}

/// An error and its causes, `: `-separated, each said once: object_store's "error
/// sending request" alone would hide "Connection refused" or a TLS failure.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        if text.len() > MAX_REASON_LEN {
            break;
        }
        cause = c.source();
    }
    text
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes, on a character boundary.
fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    reason
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
            classify("writing", "packs/a/b", "here", wrapped),
            BlobError::NoSpace("packs/a/b".into())
        );
        let other = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from_raw_os_error(5)), // EIO
        };
        assert!(matches!(
            classify("writing", "packs/a/b", "here", other),
            BlobError::Backend { .. }
        ));
    }
}
