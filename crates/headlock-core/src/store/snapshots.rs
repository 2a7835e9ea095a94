//! [`SnapshotStore`]: snapshots, the packs they use, where chunks are stored, garbage
//! collection of packs no snapshot uses, and restore jobs (download links to a
//! snapshot).
//!
//! A snapshot's record names the packs that hold the chunks it uses, not each chunk:
//! which chunks it uses is in its manifest. So a commit writes a row per pack, and a
//! pack is kept while a snapshot uses any chunk of it (docs/design.md, "Garbage
//! collection").

use async_trait::async_trait;

use crate::ObjectId;
use crate::model::{ChunkId, ChunkLocation, Page, RestoreJob, SnapshotRecord};

use super::StoreError;

/// A finished backup, recorded in one transaction: the new chunks' locations, the packs
/// of every chunk the snapshot uses, and the snapshot itself (complete).
#[derive(Debug, Clone)]
pub struct SnapshotCommit {
    /// The snapshot. Its `stored_size_bytes` is not read: the store counts it.
    pub snapshot: SnapshotRecord,
    /// Chunks stored by this backup.
    pub new_chunks: Vec<ChunkLocation>,
    /// Every distinct chunk the snapshot uses (new and reused).
    pub uses: Vec<ChunkId>,
    /// The plaintext length the snapshot's manifest gives each chunk of `uses`, in the
    /// same order (`uses` then sorted and distinct), when a client wrote the manifest:
    /// each is checked against the stored chunk in the commit's own lookup. Empty when
    /// the service cut the chunks itself.
    pub lengths: Vec<u32>,
}

/// Snapshots, chunks and restore jobs.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    // ----- snapshots and chunks
    /// Every chunk id stored for a cluster (the deduplication set).
    async fn chunk_ids(&self, cluster: ObjectId) -> Result<Vec<ChunkId>, StoreError>;
    /// The packs a snapshot uses (those that hold a chunk it uses), in id order;
    /// `NotFound` if there is no such snapshot.
    async fn snapshot_packs(&self, snapshot: ObjectId) -> Result<Vec<ObjectId>, StoreError>;
    /// Which of `ids` are stored for the cluster, sorted (an id not stored is simply
    /// absent). Any number of ids. Cheaper than [`SnapshotStore::chunk_locations`]: it
    /// reads only the chunk index.
    async fn stored_chunks(
        &self,
        cluster: ObjectId,
        ids: &[ChunkId],
    ) -> Result<Vec<ChunkId>, StoreError>;
    /// The locations of those of `ids` that are stored for the cluster (in no particular
    /// order; an id not stored is simply absent). Any number of ids.
    async fn chunk_locations(
        &self,
        cluster: ObjectId,
        ids: &[ChunkId],
    ) -> Result<Vec<ChunkLocation>, StoreError>;
    /// Records chunks an upload session stored, before any snapshot refers to them (one
    /// transaction): a chunk already recorded for its cluster is left as it is (the new
    /// record of it stays unreferenced in its pack). Until a snapshot refers to them,
    /// they are garbage to [`SnapshotStore::collect_garbage`].
    async fn record_chunks(&self, chunks: &[ChunkLocation]) -> Result<(), StoreError>;
    /// Records a finished backup (see [`SnapshotCommit`]) and returns its stored size,
    /// which the store counts: the record bytes of the chunks it uses that were stored
    /// under its id (by the backup itself, or by the upload session of the same id).
    /// [`Conflict::ChunkStored`](super::Conflict::ChunkStored) if a new chunk is already
    /// recorded for the cluster. A used chunk that is not stored:
    /// [`Conflict::ChunksNotStored`](super::Conflict::ChunksNotStored) if the commit
    /// gave lengths (a chunk stored with another length counts as not stored), else
    /// `Precondition` naming it.
    async fn commit_snapshot(&self, commit: &SnapshotCommit) -> Result<u64, StoreError>;
    /// A snapshot of a cluster.
    async fn snapshot(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<SnapshotRecord>, StoreError>;
    /// A page of a cluster's snapshots, newest first.
    async fn list_snapshots(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<SnapshotRecord>, u64), StoreError>;
    /// Number of snapshots of a cluster.
    async fn snapshot_count(&self, cluster: ObjectId) -> Result<u64, StoreError>;
    /// Writes `expires` and `do_not_delete` of a snapshot.
    async fn update_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError>;
    /// Deletes a snapshot and its pack references (not the packs).
    async fn delete_snapshot(&self, cluster: ObjectId, id: ObjectId) -> Result<(), StoreError>;
    /// Deletes the records of the cluster's packs that no snapshot uses, and of their
    /// chunks, and returns those packs' ids (the caller deletes those objects).
    async fn collect_garbage(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError>;
    /// Ids of every pack recorded for the cluster, sorted.
    async fn packs_in_use(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError>;

    // ----- restore jobs
    /// Records a restore job.
    async fn insert_restore_job(&self, job: &RestoreJob) -> Result<(), StoreError>;
    /// A restore job of a cluster.
    async fn restore_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<RestoreJob>, StoreError>;
    /// A page of a cluster's restore jobs, newest first.
    async fn list_restore_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<RestoreJob>, u64), StoreError>;
    /// Counts one download of a job, atomically, if it has downloads left; the job (after
    /// counting) or None if it has none left. Expiry is the caller's check.
    async fn take_restore_download(&self, id: ObjectId) -> Result<Option<RestoreJob>, StoreError>;
}
