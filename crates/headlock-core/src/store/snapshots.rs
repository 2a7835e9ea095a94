//! [`SnapshotStore`]: snapshots, the chunks they use and where those are stored, garbage
//! collection of chunks no snapshot uses, and restore jobs (download links to a
//! snapshot).

use async_trait::async_trait;

use crate::ObjectId;
use crate::model::{ChunkId, ChunkLocation, Page, RestoreJob, SnapshotRecord};

use super::StoreError;

/// A finished backup, recorded in one transaction: the new chunks' locations, every
/// chunk the snapshot uses, and the snapshot itself (complete).
#[derive(Debug, Clone)]
pub struct SnapshotCommit {
    /// The snapshot.
    pub snapshot: SnapshotRecord,
    /// Chunks stored by this backup.
    pub new_chunks: Vec<ChunkLocation>,
    /// Every distinct chunk the snapshot uses (new and reused).
    pub uses: Vec<ChunkId>,
}

/// Snapshots, chunks and restore jobs.
#[async_trait]
pub trait SnapshotStore: Send + Sync {
    // ----- snapshots and chunks
    /// Every chunk id stored for a cluster (the deduplication set).
    async fn chunk_ids(&self, cluster: ObjectId) -> Result<Vec<ChunkId>, StoreError>;
    /// The locations of every chunk a snapshot uses.
    async fn snapshot_chunks(&self, snapshot: ObjectId) -> Result<Vec<ChunkLocation>, StoreError>;
    /// A page of the locations of the chunks a snapshot uses, in chunk id order: at most
    /// `limit` of them, those after `after` (from the first when None). A short page is
    /// the last; a snapshot that does not exist has none.
    async fn snapshot_chunks_page(
        &self,
        snapshot: ObjectId,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkLocation>, StoreError>;
    /// Which of `ids` the snapshot uses (in no particular order). Any number of ids.
    async fn snapshot_uses(
        &self,
        snapshot: ObjectId,
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
    /// Records a finished backup (see [`SnapshotCommit`]);
    /// [`Conflict::ChunkStored`](super::Conflict::ChunkStored) if a new chunk is already
    /// recorded for the cluster.
    async fn commit_snapshot(&self, commit: &SnapshotCommit) -> Result<(), StoreError>;
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
    /// Deletes a snapshot and its chunk references (not the chunks).
    async fn delete_snapshot(&self, cluster: ObjectId, id: ObjectId) -> Result<(), StoreError>;
    /// Deletes the cluster's chunks that no snapshot uses and returns the ids of the packs
    /// that no chunk is left in (the caller deletes those objects).
    async fn collect_garbage(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError>;
    /// Ids of every pack that holds at least one recorded chunk of the cluster.
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
