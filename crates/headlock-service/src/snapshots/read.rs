//! Reading a snapshot back: its manifest, and its chunks fetched, decrypted and checked
//! (by restores, verification and compromise re-encryption).

use std::collections::HashMap;
use std::sync::Arc;

use headlock_core::model::{ChunkId, ChunkLocation, Cluster, SnapshotRecord};
use headlock_core::snapshot::{ChunkCipher, ChunkIdKey, Manifest};
use headlock_core::{BlobError, BlobStore, ObjectId};

use super::{manifest_path, pack_path, rekeyed_manifest_path};
use crate::error::Internal;
use crate::{Result, Service};

/// Reads, decrypts and checks chunks in manifest order (on a blocking thread).
pub(crate) struct ChunkSource {
    blobs: Arc<dyn BlobStore>,
    handle: tokio::runtime::Handle,
    cipher: Arc<ChunkCipher>,
    id_key: Arc<ChunkIdKey>,
    cluster: ObjectId,
    pub(super) locations: Arc<HashMap<ChunkId, ChunkLocation>>,
}

impl ChunkSource {
    pub(crate) fn read(&self, id: ChunkId) -> std::result::Result<Vec<u8>, String> {
        let loc = self
            .locations
            .get(&id)
            .ok_or_else(|| format!("chunk {id} is not recorded for the snapshot"))?;
        let path = pack_path(self.cluster, loc.pack_id);
        let record = self
            .handle
            .block_on(
                self.blobs
                    .get_range(&path, loc.offset, loc.offset + u64::from(loc.length)),
            )
            .map_err(|e| format!("chunk {id} in pack {}: {e}", loc.pack_id))?;
        self.cipher
            .open_chunk(&self.id_key, self.cluster, loc.stored_by, id, &record)
            .map_err(|e| format!("chunk {id} in pack {}: {e}", loc.pack_id))
    }
}

impl Service {
    /// Reads a snapshot's chunks with its own data key (after a compromise, snapshots
    /// not yet rewritten are under the old one).
    pub(crate) async fn chunk_source(
        &self,
        cluster: &Cluster,
        record: &SnapshotRecord,
    ) -> Result<(ChunkSource, Arc<ChunkCipher>)> {
        let data_key = self.data_key_by_id(cluster, record.data_key_id).await?;
        let cipher = Arc::new(ChunkCipher::new(&data_key));
        let id_key = Arc::new(ChunkIdKey::derive(&data_key));
        drop(data_key);
        let locations: HashMap<ChunkId, ChunkLocation> = self
            .store
            .snapshot_chunks(record.id)
            .await?
            .into_iter()
            .map(|l| (l.chunk_id, l))
            .collect();
        let source = ChunkSource {
            blobs: self.blobs()?.clone(),
            handle: tokio::runtime::Handle::current(),
            cipher: cipher.clone(),
            id_key,
            cluster: cluster.id,
            locations: Arc::new(locations),
        };
        Ok((source, cipher))
    }

    /// Opens a snapshot's manifest: the one rewritten under its data key if there is
    /// one (`<snapshot>.<data key>`), else the one its backup wrote.
    pub(crate) async fn open_manifest(
        &self,
        cipher: &ChunkCipher,
        cluster: ObjectId,
        record: &SnapshotRecord,
    ) -> Result<Manifest> {
        let snapshot = record.id;
        let blobs = self.blobs()?;
        let damaged = |e: BlobError| {
            Internal::SnapshotDamaged(format!("manifest of snapshot {snapshot}: {e}")).into()
        };
        let bytes = match blobs
            .get(&rekeyed_manifest_path(
                cluster,
                snapshot,
                record.data_key_id,
            ))
            .await
        {
            Ok(bytes) => bytes,
            Err(BlobError::NotFound(_)) => blobs
                .get(&manifest_path(cluster, snapshot))
                .await
                .map_err(damaged)?,
            Err(e) => return Err(damaged(e)),
        };
        cipher
            .open_manifest(cluster, snapshot, &bytes)
            .map_err(|e| {
                Internal::SnapshotDamaged(format!("manifest of snapshot {snapshot}: {e}")).into()
            })
    }
}
