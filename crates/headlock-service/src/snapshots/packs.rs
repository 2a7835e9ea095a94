//! Pack assembly: sealed chunks appended to pack buffers, each full pack uploaded
//! while the next one fills. Used by backups and by compromise re-encryption.

use std::sync::{Arc, Mutex};

use headlock_core::model::{ChunkId, ChunkLocation};
use headlock_core::snapshot::MAX_CHUNK;
use headlock_core::{BlobStore, ObjectId};
use tokio::sync::mpsc;

use super::{blob_err, pack_path};
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
}

/// Receives sealed chunks, appends them to pack buffers and uploads each full pack.
pub(crate) async fn assemble_packs(
    blobs: Arc<dyn BlobStore>,
    cluster: ObjectId,
    snapshot: ObjectId,
    mut sealed: mpsc::Receiver<Sealed>,
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
    while let Some(chunk) = sealed.recv().await {
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
