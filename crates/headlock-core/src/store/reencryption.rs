//! [`ReencryptionStore`]: re-encryption jobs (compromise recovery), which move every
//! snapshot of a cluster to a new data key one snapshot at a time
//! ([`ReencryptCommit`]) and then drop the old data keys ([`ReencryptFinish`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ObjectId;
use crate::model::{AuditEvent, ChunkId, ChunkLocation, Page, ReencryptionJob, ReencryptionStatus};

use super::StoreError;

/// One snapshot switched to a new data key by a re-encryption job, in one transaction:
/// the snapshot must still be under `from_data_key_id`; its chunk references are
/// replaced by `uses` (the chunks under the new key, `new_chunks` among them), its
/// `data_key_id` becomes `to_data_key_id`, and the job counts one snapshot and `bytes`
/// more. The chunks under the old key it no longer uses become garbage.
#[derive(Debug, Clone)]
pub struct ReencryptCommit {
    /// The job.
    pub job_id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The snapshot.
    pub snapshot_id: ObjectId,
    /// The data key the snapshot must be under now.
    pub from_data_key_id: ObjectId,
    /// The data key it is under after the switch.
    pub to_data_key_id: ObjectId,
    /// Chunks stored by this rewrite (`stored_by` is the snapshot).
    pub new_chunks: Vec<ChunkLocation>,
    /// Every distinct chunk the rewritten snapshot uses.
    pub uses: Vec<ChunkId>,
    /// Plaintext bytes of the snapshot, added to the job's `bytes_done`.
    pub bytes: u64,
}

/// The end of a re-encryption job, in one transaction: the job's status (and, when
/// finished, totals set to what was done), the audit events, and for a finished job the
/// deletion of every data key of the cluster but `keep_data_key_id`.
#[derive(Debug, Clone)]
pub struct ReencryptFinish {
    /// The job.
    pub job_id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// `Finished` or `Failed`.
    pub status: ReencryptionStatus,
    /// When.
    pub finished: OffsetDateTime,
    /// For `Finished`: the one data key left. `Precondition` if a snapshot of the cluster
    /// is under another key, or if this key does not exist.
    pub keep_data_key_id: Option<ObjectId>,
    /// Why it failed.
    pub error: Option<String>,
    /// Audit events (`DATA_KEY_DESTROYED`, the job's end).
    pub audit: Vec<AuditEvent>,
}

/// Re-encryption jobs.
#[async_trait]
pub trait ReencryptionStore: Send + Sync {
    /// Records a running job with its audit event;
    /// [`Conflict::ReencryptionJobRunning`](super::Conflict::ReencryptionJobRunning) if the
    /// cluster already has a running job.
    async fn insert_reencryption_job(
        &self,
        job: &ReencryptionJob,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// A re-encryption job of a cluster.
    async fn reencryption_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<ReencryptionJob>, StoreError>;
    /// A page of a cluster's re-encryption jobs, newest first.
    async fn list_reencryption_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<ReencryptionJob>, u64), StoreError>;
    /// Every running re-encryption job, oldest first (for resumption on any node).
    async fn running_reencryption_jobs(&self) -> Result<Vec<ReencryptionJob>, StoreError>;
    /// Switches one snapshot to the new data key (see [`ReencryptCommit`]);
    /// `Precondition` if the snapshot is gone or not under `from_data_key_id`, or if a
    /// reused chunk is gone; [`Conflict::ChunkStored`](super::Conflict::ChunkStored) if a new
    /// chunk is already stored.
    async fn commit_reencrypted_snapshot(&self, commit: &ReencryptCommit)
    -> Result<(), StoreError>;
    /// Ends a running job (see [`ReencryptFinish`]); `NotFound` if it is not running.
    async fn finish_reencryption_job(&self, finish: &ReencryptFinish) -> Result<(), StoreError>;
}
