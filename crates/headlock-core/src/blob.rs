//! [`BlobStore`]: where packs and manifests live (a local directory by default, S3
//! later), as plain named blobs. `headlock-store` implements it on the `object_store`
//! crate.

use async_trait::async_trait;

/// Blob store failures, saying which object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No such object.
    #[error("object {0} does not exist")]
    NotFound(String),
    /// The disk (or bucket quota) is full; nothing already stored was changed.
    #[error("no space left to store {0}")]
    NoSpace(String),
    /// Any other failure of the backend.
    #[error("blob store failed on {path}: {reason}")]
    Backend {
        /// The object.
        path: String,
        /// What happened.
        reason: String,
    },
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its path (e.g. `packs/<cluster>/<pack>`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (seconds since the epoch).
    pub modified_unix: i64,
}

/// Named, immutable blobs.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` at `path`, atomically (readers never see a partial object) and
    /// durably (it survives a crash once this returns). Objects are created, never
    /// replaced: a put of a name that already holds the same bytes succeeds and changes
    /// nothing (a retry is harmless); a put of a name that holds other bytes fails with
    /// [`BlobError::Backend`] and leaves the stored object as it was.
    async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), BlobError>;
    /// Stores the contents of `file`, from its start to its end, at `path`, with the
    /// very contract of [`BlobStore::put`] (atomic, durable, created never replaced),
    /// without holding the object in memory: for objects that grow with a snapshot
    /// (manifests). The store may read `file` more than once (to compare it with an
    /// object already there); nobody may change it meanwhile.
    async fn put_file(&self, path: &str, file: std::fs::File) -> Result<(), BlobError>;
    /// The whole object.
    async fn get(&self, path: &str) -> Result<Vec<u8>, BlobError>;
    /// Bytes `start..end` of the object.
    async fn get_range(&self, path: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError>;
    /// The object's size in bytes, or `None` if there is no such object (one HEAD on
    /// S3). For readers that must know where an object ends, or whether it exists,
    /// without a failed read (which the metrics count as an error).
    async fn size(&self, path: &str) -> Result<Option<u64>, BlobError>;
    /// Every object whose path starts with `prefix` (a directory-like prefix ending in `/`).
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError>;
    /// Deletes an object; deleting a missing object succeeds.
    async fn delete(&self, path: &str) -> Result<(), BlobError>;
}
