//! The service's metrics, recorded through the `metrics` facade: nothing is kept unless
//! the program installs a recorder (the binary installs the Prometheus one and the API
//! serves it on `/metrics`). Names follow Prometheus conventions (`_total` counters,
//! base units in the name); `docs/metrics.md` lists every metric of the program.
//!
//! Labels only ever take values from small fixed sets (rotation types, outcomes, blob
//! store operations): no ids, names or paths, so the number of series stays bounded.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! let started = Instant::now();
//! // ... rotate ...
//! headlock_service::metrics::rotation_finished("MANUAL", true, started.elapsed());
//! ```

use std::time::{Duration, Instant};

use async_trait::async_trait;
use headlock_core::BlobStore;
use headlock_core::blob::{BlobError, BlobMeta};

/// Counter: rotations finished, by `type` (`INITIAL`, `MANUAL`, `SCHEDULED`,
/// `COMPROMISE`, `OTHER`) and `outcome` (`success`, `failure`).
pub const ROTATIONS: &str = "headlock_rotations_total";
/// Histogram: how long a rotation took, in seconds, by `type` and `outcome`.
pub const ROTATION_DURATION: &str = "headlock_rotation_duration_seconds";
/// Counter: scheduled rotations that failed (and will be tried again).
pub const SCHEDULED_ROTATION_FAILURES: &str = "headlock_scheduled_rotation_failures_total";
/// Gauge: clusters whose current master key the key state watch found not Active (or
/// missing) in the KMIP server, as of this node's last watch.
pub const KEY_STATE_ERRORS: &str = "headlock_key_state_errors";
/// Counter: bytes of backup input received (before compression and encryption).
pub const BACKUP_BYTES: &str = "headlock_backup_bytes_total";
/// Counter: bytes of restored data sent (after decryption and decompression).
pub const RESTORE_BYTES: &str = "headlock_restore_bytes_total";
/// Counter: chunk bytes re-encrypted under a new data key by compromise recovery
/// (plaintext bytes of the chunks sealed anew).
pub const REENCRYPTED_BYTES: &str = "headlock_reencrypted_bytes_total";
/// Histogram: chunk store calls, in seconds, by `operation` (`put`, `get`,
/// `get_range`, `head`, `list`, `delete`); failures included.
pub const CHUNK_STORE_DURATION: &str = "headlock_chunk_store_duration_seconds";
/// Counter: failed chunk store calls, by `operation` and `kind` (`not_found`,
/// `no_space`, `backend`). A `head` that finds no object is not one.
pub const CHUNK_STORE_ERRORS: &str = "headlock_chunk_store_errors_total";
/// Counter: bytes written to (`put`) and read from (`get`, `get_range`) the chunk
/// store, by `operation`.
pub const CHUNK_STORE_BYTES: &str = "headlock_chunk_store_bytes_total";
/// Gauge: 1 when the last health check reached the metadata database, else 0.
pub const DATABASE_UP: &str = "headlock_database_up";
/// Gauge: 1 when the last health check reached the KMIP server `server`, else 0.
pub const KMIP_SERVER_UP: &str = "headlock_kmip_server_up";

/// Gives every metric above its help text and unit (the KMIP client's are described by
/// `headlock-kmip`). Call once after installing a recorder (descriptions given before are
/// lost).
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        ROTATIONS,
        Unit::Count,
        "Master key rotations finished, by rotation type and outcome."
    );
    describe_histogram!(
        ROTATION_DURATION,
        Unit::Seconds,
        "Time a master key rotation took, from start to commit or failure."
    );
    describe_counter!(
        SCHEDULED_ROTATION_FAILURES,
        Unit::Count,
        "Scheduled master key rotations that failed."
    );
    describe_gauge!(
        KEY_STATE_ERRORS,
        "Clusters whose current master key is not Active (or is missing) in the KMIP server."
    );
    describe_counter!(
        BACKUP_BYTES,
        Unit::Bytes,
        "Bytes of backup input received, before compression and encryption."
    );
    describe_counter!(
        RESTORE_BYTES,
        Unit::Bytes,
        "Bytes of restored data sent, after decryption and decompression."
    );
    describe_counter!(
        REENCRYPTED_BYTES,
        Unit::Bytes,
        "Chunk bytes re-encrypted under a new data key by compromise recovery."
    );
    describe_histogram!(
        CHUNK_STORE_DURATION,
        Unit::Seconds,
        "Time of chunk store calls, by operation (failures included)."
    );
    describe_counter!(
        CHUNK_STORE_ERRORS,
        Unit::Count,
        "Failed chunk store calls, by operation and kind of failure."
    );
    describe_counter!(
        CHUNK_STORE_BYTES,
        Unit::Bytes,
        "Bytes written to and read from the chunk store, by operation."
    );
    describe_gauge!(
        DATABASE_UP,
        "1 if the last health check reached the metadata database, else 0."
    );
    describe_gauge!(
        KMIP_SERVER_UP,
        "1 if the last health check reached this KMIP server, else 0."
    );
}

/// The `type` label for a rotation type, from a fixed set (anything else is `OTHER`).
fn rotation_type_label(kind: &str) -> &'static str {
    match kind {
        "INITIAL" => "INITIAL",
        "MANUAL" => "MANUAL",
        "SCHEDULED" => "SCHEDULED",
        "COMPROMISE" => "COMPROMISE",
        _ => "OTHER",
    }
}

/// Records a finished rotation: `kind` is the rotation type's wire name (`MANUAL`,
/// `SCHEDULED`, ...), `ok` whether it committed, `elapsed` how long it took.
pub fn rotation_finished(kind: &str, ok: bool, elapsed: Duration) {
    let kind = rotation_type_label(kind);
    let outcome = if ok { "success" } else { "failure" };
    ::metrics::counter!(ROTATIONS, "type" => kind, "outcome" => outcome).increment(1);
    ::metrics::histogram!(ROTATION_DURATION, "type" => kind, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// Records a scheduled rotation that failed.
pub fn scheduled_rotation_failed() {
    ::metrics::counter!(SCHEDULED_ROTATION_FAILURES).increment(1);
}

/// Sets the number of clusters in the key error state (after a key state watch).
pub fn key_state_errors(n: usize) {
    ::metrics::gauge!(KEY_STATE_ERRORS).set(n as f64);
}

/// Adds `n` bytes of backup input received.
pub fn backup_bytes(n: u64) {
    ::metrics::counter!(BACKUP_BYTES).increment(n);
}

/// Adds `n` bytes of restored data sent.
pub fn restore_bytes(n: u64) {
    ::metrics::counter!(RESTORE_BYTES).increment(n);
}

/// Adds `n` plaintext bytes of chunks re-encrypted under a new data key.
pub fn reencrypted_bytes(n: u64) {
    ::metrics::counter!(REENCRYPTED_BYTES).increment(n);
}

/// A [`BlobStore`] that times every call of the store it wraps and counts its failures
/// and bytes (see [`CHUNK_STORE_DURATION`], [`CHUNK_STORE_ERRORS`],
/// [`CHUNK_STORE_BYTES`]). It changes nothing else: results pass through as they are.
#[derive(Debug)]
pub struct MeteredBlobStore<B> {
    inner: B,
}

impl<B: BlobStore> MeteredBlobStore<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        MeteredBlobStore { inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

/// Records one call: its duration, and its failure or the bytes it moved.
fn observe<T>(
    operation: &'static str,
    started: Instant,
    result: &Result<T, BlobError>,
    bytes: impl FnOnce(&T) -> Option<u64>,
) {
    ::metrics::histogram!(CHUNK_STORE_DURATION, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(value) => {
            if let Some(n) = bytes(value) {
                ::metrics::counter!(CHUNK_STORE_BYTES, "operation" => operation).increment(n);
            }
        }
        Err(e) => {
            let kind = match e {
                BlobError::NotFound(_) => "not_found",
                BlobError::NoSpace(_) => "no_space",
                _ => "backend",
            };
            ::metrics::counter!(CHUNK_STORE_ERRORS, "operation" => operation, "kind" => kind)
                .increment(1);
        }
    }
}

#[async_trait]
impl<B: BlobStore> BlobStore for MeteredBlobStore<B> {
    async fn put(&self, path: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let len = bytes.len() as u64;
        let started = Instant::now();
        let result = self.inner.put(path, bytes).await;
        observe("put", started, &result, |_| Some(len));
        result
    }

    async fn put_file(&self, path: &str, file: std::fs::File) -> Result<(), BlobError> {
        let len = file.metadata().map(|m| m.len()).ok();
        let started = Instant::now();
        let result = self.inner.put_file(path, file).await;
        observe("put", started, &result, |_| len);
        result
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, BlobError> {
        let started = Instant::now();
        let result = self.inner.get(path).await;
        observe("get", started, &result, |b| Some(b.len() as u64));
        result
    }

    async fn get_range(&self, path: &str, start: u64, end: u64) -> Result<Vec<u8>, BlobError> {
        let started = Instant::now();
        let result = self.inner.get_range(path, start, end).await;
        observe("get_range", started, &result, |b| Some(b.len() as u64));
        result
    }

    async fn size(&self, path: &str) -> Result<Option<u64>, BlobError> {
        let started = Instant::now();
        let result = self.inner.size(path).await;
        // A missing object is an answer here (`None`), not a failure.
        observe("head", started, &result, |_| None);
        result
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>, BlobError> {
        let started = Instant::now();
        let result = self.inner.list(prefix).await;
        observe("list", started, &result, |_| None);
        result
    }

    async fn delete(&self, path: &str) -> Result<(), BlobError> {
        let started = Instant::now();
        let result = self.inner.delete(path).await;
        observe("delete", started, &result, |_| None);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_known_rotation_types_as_labels() {
        assert_eq!(rotation_type_label("MANUAL"), "MANUAL");
        assert_eq!(rotation_type_label("SCHEDULED"), "SCHEDULED");
        assert_eq!(rotation_type_label("manual"), "OTHER");
        assert_eq!(rotation_type_label("5f0000000000000000000001"), "OTHER");
    }
}
