//! Re-encryption jobs (compromise recovery): the job records, the per-snapshot switch
//! to a new data key and the end of a job, each one transaction
//! ([`ReencryptionStore`]); the switch writes the snapshot's chunk rows as a snapshot
//! commit does (`chunks.rs`).
//!
//! Locking: the switch and the end take [`q::CLUSTER_LOCK`] first, like a key change, a
//! garbage collection and a snapshot deletion of the cluster, so on PostgreSQL they queue
//! with those (a collection never sees half a switch; a switch never refers to a chunk a
//! collection is removing). SQLite has one writer at a time anyway.

use async_trait::async_trait;
use headlock_core::model::{AuditEvent, Page, ReencryptionJob, ReencryptionStatus};
use headlock_core::store::{ReencryptCommit, ReencryptFinish, ReencryptionStore};
use headlock_core::{ObjectId, StoreConflict as Conflict, StoreError};
use sqlx::error::ErrorKind;

use crate::audit::append_audit_in;
use crate::chunks::SnapshotChunks;
use crate::db::stmt;
use crate::error::{classify, ctx, is_violation};
use crate::queries as q;
use crate::rows::{self, bigint, id_text, micros};
use crate::{SqlStore, retrying};

#[async_trait]
impl ReencryptionStore for SqlStore {
    async fn insert_reencryption_job(
        &self,
        job: &ReencryptionJob,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        retrying("insert_reencryption_job", || async move {
            let op = format!(
                "inserting re-encryption job {} of cluster {}",
                job.id, job.cluster_id
            );
            let mut tx = self.begin_write(&op).await?;
            let inserted = stmt(q::INSERT_REENCRYPTION_JOB)
                .bind(id_text(job.id))
                .bind(id_text(job.group_id))
                .bind(id_text(job.cluster_id))
                .bind(id_text(job.new_data_key_id))
                .bind(job.status.as_str())
                .bind(micros(job.created))
                .bind(job.finished.map(micros))
                .bind(bigint(job.snapshots_total, "snapshotsTotal")?)
                .bind(bigint(job.snapshots_done, "snapshotsDone")?)
                .bind(bigint(job.bytes_total, "bytesTotal")?)
                .bind(bigint(job.bytes_done, "bytesDone")?)
                .bind(&job.requested_by)
                .bind(job.error.clone())
                .execute(&mut tx)
                .await;
            if let Err(e) = inserted {
                if is_violation(&e, ErrorKind::UniqueViolation) {
                    return Err(Conflict::ReencryptionJobRunning.into());
                }
                return Err(classify(&op, e));
            }
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }

    async fn reencryption_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<ReencryptionJob>, StoreError> {
        let what = || format!("reading re-encryption job {id} of cluster {cluster}");
        self.find(
            q::REENCRYPTION_JOB,
            &[cluster, id],
            what,
            rows::reencryption_job,
        )
        .await
    }

    async fn list_reencryption_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<ReencryptionJob>, u64), StoreError> {
        let op = format!("listing re-encryption jobs of cluster {cluster}");
        let queries = (q::LIST_REENCRYPTION_JOBS, q::COUNT_REENCRYPTION_JOBS);
        self.list_page(queries, Some(cluster), page, &op, rows::reencryption_job)
            .await
    }

    async fn running_reencryption_jobs(&self) -> Result<Vec<ReencryptionJob>, StoreError> {
        let op = "listing running re-encryption jobs";
        let found = stmt(q::RUNNING_REENCRYPTION_JOBS)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx(op))?;
        found.iter().map(rows::reencryption_job).collect()
    }

    async fn commit_reencrypted_snapshot(
        &self,
        commit: &ReencryptCommit,
    ) -> Result<(), StoreError> {
        retrying("commit_reencrypted_snapshot", || async move {
            let cluster = commit.cluster_id;
            let op = format!(
                "switching snapshot {} of cluster {cluster} to data key {}",
                commit.snapshot_id, commit.to_data_key_id
            );
            let chunks = SnapshotChunks::check(
                &op,
                cluster,
                commit.snapshot_id,
                (&commit.uses, &[]),
                &commit.new_chunks,
            )?;
            let bytes = bigint(commit.bytes, "the snapshot's size")?;
            let cluster_text = id_text(cluster);
            let snapshot_text = id_text(commit.snapshot_id);

            let mut tx = self.begin_write(&op).await?;
            if !SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await? {
                return Err(StoreError::Precondition(format!("{op}: no such cluster")));
            }
            let switched = stmt(q::SWITCH_SNAPSHOT_DATA_KEY)
                .bind(&snapshot_text)
                .bind(&cluster_text)
                .bind(id_text(commit.from_data_key_id))
                .bind(id_text(commit.to_data_key_id))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if switched == 0 {
                return Err(StoreError::Precondition(format!(
                    "{op}: the snapshot is gone, or not under data key {} any more",
                    commit.from_data_key_id
                )));
            }
            let counted = stmt(q::COUNT_REENCRYPTED_SNAPSHOT)
                .bind(id_text(commit.job_id))
                .bind(bytes)
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if counted == 0 {
                return Err(StoreError::Precondition(format!(
                    "{op}: re-encryption job {} is not running",
                    commit.job_id
                )));
            }
            let mut tx = chunks.insert_new(tx, &self.pool, &op).await?;
            // The references to the old key's packs give way to those of `uses`.
            stmt(q::DELETE_SNAPSHOT_PACKS)
                .bind(&snapshot_text)
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            let (tx, _) = chunks.insert_references(tx, &op).await?;
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }

    async fn finish_reencryption_job(&self, finish: &ReencryptFinish) -> Result<(), StoreError> {
        retrying("finish_reencryption_job", || async move {
            let cluster = finish.cluster_id;
            let op = format!(
                "ending re-encryption job {} of cluster {cluster} as {}",
                finish.job_id, finish.status
            );
            let finished = finish.status == ReencryptionStatus::Finished;
            if finished != finish.keep_data_key_id.is_some()
                || finish.status == ReencryptionStatus::Running
            {
                return Err(StoreError::Precondition(format!(
                    "{op}: a finished job keeps exactly one data key, a failed one all of them"
                )));
            }
            let cluster_text = id_text(cluster);
            let mut tx = self.begin_write(&op).await?;
            // Also where the cluster is gone (a failed job): then there is nothing to lock.
            SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await?;
            if let Some(keep) = finish.keep_data_key_id {
                let keep_text = id_text(keep);
                let exists = stmt(q::DATA_KEY_EXISTS)
                    .bind(&cluster_text)
                    .bind(&keep_text)
                    .fetch_optional(&mut tx)
                    .await
                    .map_err(ctx(&op))?;
                if exists.is_none() {
                    return Err(StoreError::Precondition(format!(
                        "{op}: the cluster has no data key {keep}"
                    )));
                }
                let left = stmt(q::COUNT_SNAPSHOTS_OFF_KEY)
                    .bind(&cluster_text)
                    .bind(&keep_text)
                    .fetch_i64(&mut tx)
                    .await
                    .map_err(ctx(&op))?;
                if left > 0 {
                    return Err(StoreError::Precondition(format!(
                        "{op}: {left} snapshot(s) are still under another data key"
                    )));
                }
                stmt(q::DELETE_OTHER_DATA_KEYS)
                    .bind(&cluster_text)
                    .bind(&keep_text)
                    .execute(&mut tx)
                    .await
                    .map_err(ctx(&op))?;
            }
            let ended = stmt(q::END_REENCRYPTION_JOB)
                .bind(id_text(finish.job_id))
                .bind(finish.status.as_str())
                .bind(micros(finish.finished))
                .bind(finish.error.clone())
                .bind(finished)
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if ended == 0 {
                return Err(StoreError::NotFound(format!("{op}: no such running job")));
            }
            for event in &finish.audit {
                append_audit_in(&mut tx, event).await?;
            }
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }
}
