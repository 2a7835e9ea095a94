//! Pack assembly: sealed chunks appended to pack buffers, each full pack uploaded
//! while the next one fills. Used by backups and by compromise re-encryption; and
//! [`seal_pipeline`], the producer / sealing workers / pack writer pipeline that plain
//! backups and upload sessions share.

use std::sync::{Arc, Mutex};

use headlock_core::model::{ChunkId, ChunkLocation};
use headlock_core::snapshot::{ChunkCipher, ChunkIdKey, MAX_CHUNK};
use headlock_core::{BlobStore, ObjectId};
use tokio::sync::mpsc;

use super::{blob_err, pack_path, worker_threads};
use crate::error::BadRequest;
use crate::{Result, ServiceError};

/// A pack is closed once it holds this many bytes. With the largest chunk on top, a
/// pack buffer stays under glibc's 32 MiB ceiling for its dynamic mmap threshold, so
/// freed pack buffers are reused from the heap instead of being page-faulted in afresh
/// for every pack (the figures: docs/benchmarks.md, "Backup and restore, beside restic").
pub const PACK_TARGET: usize = 24 * 1024 * 1024;

/// One sealed chunk on its way to a pack.
pub(crate) struct Sealed {
    pub(crate) id: ChunkId,
    pub(crate) plaintext_length: u32,
    pub(crate) record: Vec<u8>,
}

/// The first error of a pipeline wins; later ones are consequences.
#[derive(Default, Clone)]
pub(crate) struct FirstError(Arc<Mutex<Option<ServiceError>>>);

impl FirstError {
    pub(crate) fn set(&self, e: ServiceError) {
        let mut slot = self.0.lock().expect("error slot poisoned");
        if slot.is_none() {
            *slot = Some(e);
        }
    }
    pub(crate) fn take(&self) -> Option<ServiceError> {
        self.0.lock().expect("error slot poisoned").take()
    }
    fn is_set(&self) -> bool {
        self.0.lock().expect("error slot poisoned").is_some()
    }
}

/// Receives sealed chunks, appends them to pack buffers and uploads each full pack.
pub(crate) async fn assemble_packs(
    blobs: Arc<dyn BlobStore>,
    cluster: ObjectId,
    snapshot: ObjectId,
    mut sealed: mpsc::Receiver<Vec<Sealed>>,
    written: Arc<Mutex<Vec<String>>>,
    failure: FirstError,
) -> Result<(Vec<ChunkLocation>, u64)> {
    let mut locations = Vec::new();
    let mut stored = 0u64;
    let mut pack_id = ObjectId::new();
    let mut buf: Vec<u8> = Vec::new();
    let upload = |pack_id: ObjectId, buf: Vec<u8>| {
        let blobs = blobs.clone();
        let written = written.clone();
        async move {
            let path = pack_path(cluster, pack_id);
            written
                .lock()
                .expect("written list poisoned")
                .push(path.clone());
            blobs.put(&path, buf).await.map_err(blob_err)
        }
    };
    // One pack uploads (and fsyncs) while the next one fills: at most two pack buffers
    // exist at a time.
    let mut in_flight: Option<tokio::task::JoinHandle<Result<()>>> = None;
    let settle = |handle: tokio::task::JoinHandle<Result<()>>| async {
        match handle.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(ServiceError::unexpected(format!(
                "pack upload task failed: {e}"
            ))),
        }
    };
    while let Some(batch) = sealed.recv().await {
        for chunk in batch {
            if buf.is_empty() {
                buf.reserve(PACK_TARGET + MAX_CHUNK as usize + 64);
                buf.extend_from_slice(headlock_core::snapshot::PACK_MAGIC);
            }
            locations.push(ChunkLocation {
                cluster_id: cluster,
                chunk_id: chunk.id,
                pack_id,
                offset: buf.len() as u64,
                length: chunk.record.len() as u32,
                plaintext_length: chunk.plaintext_length,
                stored_by: snapshot,
            });
            stored += chunk.record.len() as u64;
            buf.extend_from_slice(&chunk.record);
            if buf.len() >= PACK_TARGET {
                if let Some(previous) = in_flight.take()
                    && let Err(e) = settle(previous).await
                {
                    failure.set(e);
                    return Err(ServiceError::unexpected("pack upload failed".into()));
                }
                in_flight = Some(tokio::spawn(upload(pack_id, std::mem::take(&mut buf))));
                pack_id = ObjectId::new();
            }
        }
    }
    if let Some(previous) = in_flight.take()
        && let Err(e) = settle(previous).await
    {
        failure.set(e);
        return Err(ServiceError::unexpected("pack upload failed".into()));
    }
    if !buf.is_empty()
        && let Err(e) = upload(pack_id, buf).await
    {
        failure.set(e);
        return Err(ServiceError::unexpected("pack upload failed".into()));
    }
    Ok((locations, stored))
}

/// Chunks handed to a sealing worker at once, at most: a hand-off between threads
/// (a channel send, a futex wake-up) costs more than sealing a chunk of a few hundred
/// bytes, so chunks go in groups (a backup of 200,000 files of 60 bytes sent three
/// hand-offs a chunk).
const JOB_CHUNKS: usize = 64;
/// Bytes of plaintext handed to a sealing worker at once, at most: large chunks go one
/// by one, so that the workers share them as before.
const JOB_BYTES: usize = 256 * 1024;

/// Where a producer sends the chunks it wants sealed and packed, (id, plaintext): they
/// are handed to the sealing workers in groups of up to [`JOB_CHUNKS`] chunks or
/// [`JOB_BYTES`] bytes, in the order sent. What is pending is handed over when this
/// is dropped (when the producer returns).
pub(crate) struct ChunkJobs {
    tx: std::sync::mpsc::SyncSender<Vec<(ChunkId, Vec<u8>)>>,
    pending: Vec<(ChunkId, Vec<u8>)>,
    pending_bytes: usize,
    /// Set by a worker that failed: the producer stops at its next hand-over rather
    /// than feed the other workers the rest of a request that will be refused.
    failure: FirstError,
}

/// The sealing workers stopped: the pipeline failed downstream.
#[derive(Debug)]
pub(crate) struct PipelineStopped;

impl ChunkJobs {
    pub(crate) fn send(
        &mut self,
        job: (ChunkId, Vec<u8>),
    ) -> std::result::Result<(), PipelineStopped> {
        self.pending_bytes += job.1.len();
        self.pending.push(job);
        if self.pending.len() >= JOB_CHUNKS || self.pending_bytes >= JOB_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::result::Result<(), PipelineStopped> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.failure.is_set() {
            return Err(PipelineStopped);
        }
        self.pending_bytes = 0;
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(JOB_CHUNKS));
        self.tx.send(batch).map_err(|_| PipelineStopped)
    }
}

impl Drop for ChunkJobs {
    fn drop(&mut self) {
        // Workers that stopped have recorded why; nothing to add.
        let _ = self.flush();
    }
}

/// What a [`seal_pipeline`] made: the producer's own result, where each new chunk was
/// stored, and the bytes stored.
pub(crate) struct Packed<T> {
    pub(crate) produced: T,
    pub(crate) locations: Vec<ChunkLocation>,
    pub(crate) stored: u64,
}

/// Runs `produce` on a blocking thread; every chunk it sends is compressed and sealed by
/// a pool of worker threads and appended to packs, which are uploaded (durably) as they
/// fill. Channels between the stages are bounded. With `check_ids`, the chunks' ids came
/// from a client: each worker checks that a chunk hashes to its id before sealing it,
/// so that the hashing is shared by the workers rather than done by the producer alone,
/// and a mismatch fails the pipeline with [`BadRequest::ChunkIdMismatch`]. `written` lists every pack object
/// written, for the caller to delete if it does not commit. The first failure recorded
/// downstream wins over the producer's own error (which is usually its consequence).
pub(crate) async fn seal_pipeline<T: Send + 'static>(
    blobs: Arc<dyn BlobStore>,
    cluster: ObjectId,
    snapshot: ObjectId,
    cipher: Arc<ChunkCipher>,
    written: Arc<Mutex<Vec<String>>>,
    check_ids: Option<Arc<ChunkIdKey>>,
    produce: impl FnOnce(ChunkJobs) -> Result<T> + Send + 'static,
) -> Result<Packed<T>> {
    let workers = worker_threads(16);
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Vec<(ChunkId, Vec<u8>)>>(workers * 2);
    let (sealed_tx, sealed_rx) = mpsc::channel::<Vec<Sealed>>(workers * 2);
    let failure = FirstError::default();

    // The pack writer runs on one thread of its own (not on whichever runtime worker
    // polls it), so every pack buffer comes from, and returns to, one malloc arena
    // (the peak memory before and after: docs/benchmarks.md, "Backup and restore,
    // beside restic").
    let packer = {
        let handle = tokio::runtime::Handle::current();
        let task = assemble_packs(
            blobs,
            cluster,
            snapshot,
            sealed_rx,
            written,
            failure.clone(),
        );
        tokio::task::spawn_blocking(move || handle.block_on(task))
    };

    // The producer on this blocking thread, sealing on `workers` threads.
    let fail = failure.clone();
    let producing = tokio::task::spawn_blocking(move || {
        let job_rx = Arc::new(Mutex::new(job_rx));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let job_rx = job_rx.clone();
                let sealed_tx = sealed_tx.clone();
                let cipher = cipher.clone();
                let fail = fail.clone();
                let check_ids = check_ids.clone();
                scope.spawn(move || {
                    loop {
                        let job = job_rx.lock().expect("job queue poisoned").recv();
                        let Ok(batch) = job else { return };
                        let mut sealed = Vec::with_capacity(batch.len());
                        for (id, plaintext) in batch {
                            if let Some(key) = &check_ids
                                && !key.matches(&plaintext, &id)
                            {
                                fail.set(BadRequest::ChunkIdMismatch(id.to_string()).into());
                                return;
                            }
                            match cipher.seal_chunk(cluster, snapshot, id, &plaintext) {
                                Ok(record) => sealed.push(Sealed {
                                    id,
                                    plaintext_length: plaintext.len() as u32,
                                    record,
                                }),
                                Err(e) => {
                                    fail.set(ServiceError::unexpected(format!(
                                        "sealing chunk {id}: {e}"
                                    )));
                                    return;
                                }
                            }
                        }
                        if sealed_tx.blocking_send(sealed).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(sealed_tx);
            // Dropping the jobs (when `produce` returns) hands over what is pending and
            // lets the workers finish.
            produce(ChunkJobs {
                tx: job_tx,
                pending: Vec::with_capacity(JOB_CHUNKS),
                pending_bytes: 0,
                failure: fail.clone(),
            })
        })
    });

    let produced = producing
        .await
        .map_err(|e| ServiceError::unexpected(format!("backup thread failed: {e}")))
        .and_then(|r| r);
    let packed = packer
        .await
        .map_err(|e| ServiceError::unexpected(format!("pack writer failed: {e}")))
        .and_then(|r| r);
    match (produced, packed, failure.take()) {
        (Ok(produced), Ok((locations, stored)), None) => Ok(Packed {
            produced,
            locations,
            stored,
        }),
        // The first failure recorded downstream is the cause; the producer's own
        // error (a client that went away, a malformed archive) otherwise.
        (produced, packed, first) => Err(first
            .or(packed.err())
            .or(produced.err())
            .unwrap_or_else(|| ServiceError::unexpected("backup failed".into()))),
    }
}
