//! [`SnapshotStore`] on SQL: snapshots and their chunks (the rows themselves are written
//! by `chunks.rs`, shared with re-encryption), garbage collection, and restore jobs.
//!
//! A snapshot refers to the packs that hold the chunks it uses, with a foreign key
//! (`migrations/0006_pack_references.sql`), so no commit can refer to a pack garbage
//! collection removed, and no collection can remove a pack in use; how commits and
//! collections of one cluster queue on PostgreSQL is told in `queries.rs`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use headlock_core::model::{ChunkId, ChunkLocation, Page, RestoreJob, SnapshotRecord};
use headlock_core::store::{SnapshotCommit, SnapshotStore};
use headlock_core::{ObjectId, StoreError};

use crate::chunks::{SnapshotChunks, insert_packs, stored_ids, with_ids};
use crate::db::stmt;
use crate::error::ctx;
use crate::queries as q;
use crate::rows::{self, bigint, id_text, micros};
use crate::{SqlStore, retrying};

#[async_trait]
impl SnapshotStore for SqlStore {
    async fn chunk_ids(&self, cluster: ObjectId) -> Result<Vec<ChunkId>, StoreError> {
        let op = format!("reading chunk ids of cluster {cluster}");
        let found = stmt(q::CHUNK_IDS)
            .bind(id_text(cluster))
            .fetch_texts(&self.pool)
            .await
            .map_err(ctx(&op))?;
        found
            .iter()
            .map(|text| {
                text.parse().map_err(|_| {
                    StoreError::Backend(format!(
                        "{op}: table chunks holds a chunk id that is not 64 hex digits"
                    ))
                })
            })
            .collect()
    }

    async fn snapshot_packs(&self, snapshot: ObjectId) -> Result<Vec<ObjectId>, StoreError> {
        let op = format!("reading the packs snapshot {snapshot} uses");
        let found = stmt(q::SNAPSHOT_PACKS)
            .bind(id_text(snapshot))
            .fetch_texts(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if found.is_empty() {
            // An empty snapshot (an empty stream) uses no pack; a missing one is an error.
            let exists = stmt(q::SNAPSHOT_EXISTS)
                .bind(id_text(snapshot))
                .fetch_optional(&self.pool)
                .await
                .map_err(ctx(&op))?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("{op}: no such snapshot")));
            }
        }
        found.iter().map(|p| parse_pack_id(p, &op)).collect()
    }

    async fn stored_chunks(
        &self,
        cluster: ObjectId,
        ids: &[ChunkId],
    ) -> Result<Vec<ChunkId>, StoreError> {
        let op = format!("reading which chunks cluster {cluster} has");
        stored_ids(&self.pool, &id_text(cluster), ids, &op).await
    }

    async fn chunk_locations(
        &self,
        cluster: ObjectId,
        ids: &[ChunkId],
    ) -> Result<Vec<ChunkLocation>, StoreError> {
        let op = format!("reading chunk locations of cluster {cluster}");
        let cluster_text = id_text(cluster);
        let mut out = Vec::new();
        for batch in ids.chunks(q::CHUNK_BATCH) {
            let sql = q::chunk_locations(batch.len());
            let found = with_ids(&sql, &[&cluster_text], batch)
                .fetch_all(&self.pool)
                .await
                .map_err(ctx(&op))?;
            for row in &found {
                out.push(rows::chunk_location(row)?);
            }
        }
        Ok(out)
    }

    async fn record_chunks(&self, chunks: &[ChunkLocation]) -> Result<(), StoreError> {
        retrying("record_chunks", || async move {
            let op = format!("recording {} uploaded chunks", chunks.len());
            // In chunk id order, as a commit inserts them (no deadlock between two).
            let mut sorted: Vec<&ChunkLocation> = chunks.iter().collect();
            sorted.sort_by_key(|c| (c.cluster_id, c.chunk_id));
            let mut tx = self.begin_write(&op).await?;
            for cluster in sorted.iter().map(|c| c.cluster_id).collect::<BTreeSet<_>>() {
                let packs = sorted
                    .iter()
                    .filter(|c| c.cluster_id == cluster)
                    .map(|c| c.pack_id)
                    .collect();
                insert_packs(&mut tx, &id_text(cluster), &packs, &op).await?;
            }
            for batch in sorted.chunks(q::CHUNK_BATCH) {
                let sql = q::insert_chunks_if_new(batch.len());
                let mut insert = stmt(&sql).persistent(batch.len() == q::CHUNK_BATCH);
                for chunk in batch {
                    insert = insert
                        .bind(id_text(chunk.cluster_id))
                        .bind(chunk.chunk_id.to_string())
                        .bind(id_text(chunk.pack_id))
                        .bind(bigint(chunk.offset, "a chunk offset")?)
                        .bind(i64::from(chunk.length))
                        .bind(i64::from(chunk.plaintext_length))
                        .bind(id_text(chunk.stored_by));
                }
                insert.execute(&mut tx).await.map_err(ctx(&op))?;
            }
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }

    /// Records a finished backup in one write transaction: the snapshot, its new chunks
    /// (multi-row inserts of 500 rows, their packs first), its references to the packs
    /// of the chunks it uses (looked up 500 chunks at a time, lengths checked if given)
    /// and its stored size, counted from the same rows.
    ///
    /// Refused before anything is written (`Precondition`): a new chunk of another cluster
    /// or stored by another snapshot, or one the snapshot does not use; lengths that are
    /// not one per used chunk, sorted and distinct. Then, rolling everything back:
    /// `NotFound` if the cluster is not in the snapshot's group; `Conflict` if the
    /// snapshot id or a new chunk is already recorded (naming the chunk); for a used
    /// chunk not stored for the cluster, `Conflict::ChunksNotStored` with lengths (also
    /// for another length; naming the first, counting all), else `Precondition`
    /// (garbage collection removed it; naming it). Duplicate ids in `uses` count once.
    async fn commit_snapshot(&self, commit: &SnapshotCommit) -> Result<u64, StoreError> {
        retrying("commit_snapshot", || async move {
            let snap = &commit.snapshot;
            let cluster = snap.cluster_id;
            let op = format!("committing snapshot {} of cluster {cluster}", snap.id);

            let chunks = SnapshotChunks::check(
                &op,
                cluster,
                snap.id,
                (&commit.uses, &commit.lengths),
                &commit.new_chunks,
            )?;
            // The stored size is counted below; 0 until then.
            let sizes = [
                bigint(snap.data_size_bytes, "dataSizeBytes")?,
                0,
                bigint(snap.file_size_bytes, "fileSizeBytes")?,
            ];
            let cluster_text = id_text(cluster);
            let snapshot_text = id_text(snap.id);

            let mut tx = self.begin_write(&op).await?;
            let in_group = stmt(q::CLUSTER_IN_GROUP)
                .bind(id_text(snap.group_id))
                .bind(&cluster_text)
                .fetch_optional(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if in_group.is_none() {
                return Err(StoreError::NotFound(format!(
                    "{op}: no such cluster in group {}",
                    snap.group_id
                )));
            }
            stmt(q::INSERT_SNAPSHOT)
                .bind(&snapshot_text)
                .bind(id_text(snap.group_id))
                .bind(&cluster_text)
                .bind(micros(snap.created))
                .bind(snap.kind.as_str())
                .bind(sizes[0])
                .bind(sizes[1])
                .bind(sizes[2])
                .bind(snap.expires.map(micros))
                .bind(snap.do_not_delete)
                .bind(id_text(snap.data_key_id))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;

            let tx = chunks.insert_new(tx, &self.pool, &op).await?;
            let (mut tx, stored) = chunks.insert_references(tx, &op).await?;
            stmt(q::SET_SNAPSHOT_STORED_SIZE)
                .bind(&snapshot_text)
                .bind(bigint(stored, "storageSizeBytes")?)
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            tx.commit().await.map_err(ctx(&op))?;
            Ok(stored)
        })
        .await
    }

    async fn snapshot(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        let what = || format!("reading snapshot {id} of cluster {cluster}");
        self.find(q::SNAPSHOT, &[cluster, id], what, rows::snapshot)
            .await
    }

    async fn list_snapshots(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<SnapshotRecord>, u64), StoreError> {
        let op = format!("listing snapshots of cluster {cluster}");
        self.list_page(
            (q::LIST_SNAPSHOTS, q::COUNT_SNAPSHOTS),
            Some(cluster),
            page,
            &op,
            rows::snapshot,
        )
        .await
    }

    async fn snapshot_count(&self, cluster: ObjectId) -> Result<u64, StoreError> {
        self.count(
            q::COUNT_SNAPSHOTS,
            Some(cluster),
            &format!("counting snapshots of cluster {cluster}"),
        )
        .await
    }

    /// Writes `expires` and `do_not_delete` of the snapshot with `snapshot.id` in
    /// `snapshot.cluster_id`; `NotFound` if there is none.
    async fn update_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError> {
        let op = format!(
            "updating snapshot {} of cluster {}",
            snapshot.id, snapshot.cluster_id
        );
        let done = stmt(q::UPDATE_SNAPSHOT)
            .bind(id_text(snapshot.id))
            .bind(id_text(snapshot.cluster_id))
            .bind(snapshot.expires.map(micros))
            .bind(snapshot.do_not_delete)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such snapshot")));
        }
        Ok(())
    }

    async fn delete_snapshot(&self, cluster: ObjectId, id: ObjectId) -> Result<(), StoreError> {
        retrying("delete_snapshot", || async move {
            let op = format!("deleting snapshot {id} of cluster {cluster}");
            let mut tx = self.begin_write(&op).await?;
            // PostgreSQL: queues with garbage collections of the cluster.
            SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await?;
            let exists = stmt(q::SNAPSHOT)
                .bind(id_text(cluster))
                .bind(id_text(id))
                .fetch_optional(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("{op}: no such snapshot")));
            }
            stmt(q::DELETE_SNAPSHOT_PACKS)
                .bind(id_text(id))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            stmt(q::DELETE_SNAPSHOT)
                .bind(id_text(id))
                .bind(id_text(cluster))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }

    /// One write transaction: finds the packs no snapshot uses, deletes their chunk
    /// records and them, and returns them (sorted). The caller deletes those objects; a
    /// pack object that was never recorded (a backup that died before recording its
    /// chunks) is not returned: compare [`SnapshotStore::packs_in_use`] with a listing
    /// for those.
    async fn collect_garbage(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError> {
        retrying("collect_garbage", || async move {
            let op = format!("collecting garbage of cluster {cluster}");
            let cluster_text = id_text(cluster);
            let mut tx = self.begin_write(&op).await?;
            // PostgreSQL: waits for the snapshot commits of the cluster in flight, and holds
            // off new ones until this is done (see queries.rs).
            SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await?;
            let garbage = stmt(q::GARBAGE_PACKS)
                .bind(&cluster_text)
                .fetch_texts(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if garbage.is_empty() {
                tx.rollback().await.map_err(ctx(&op))?;
                return Ok(Vec::new());
            }
            // Their chunk records first (the foreign key from chunks to packs).
            for batch in garbage.chunks(q::CHUNK_BATCH) {
                for sql in [
                    q::delete_pack_chunks(batch.len()),
                    q::delete_packs(batch.len()),
                ] {
                    let mut delete = stmt(&sql).persistent(false).bind(&cluster_text);
                    for pack in batch {
                        delete = delete.bind(pack.as_str());
                    }
                    delete.execute(&mut tx).await.map_err(ctx(&op))?;
                }
            }
            tx.commit().await.map_err(ctx(&op))?;
            garbage.iter().map(|p| parse_pack_id(p, &op)).collect()
        })
        .await
    }

    async fn packs_in_use(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError> {
        let op = format!("reading packs in use by cluster {cluster}");
        let found = stmt(q::PACKS_IN_USE)
            .bind(id_text(cluster))
            .fetch_texts(&self.pool)
            .await
            .map_err(ctx(&op))?;
        found.iter().map(|p| parse_pack_id(p, &op)).collect()
    }

    /// Records a restore job; `NotFound` unless its snapshot exists in its cluster and
    /// group, `Conflict` if the id is taken.
    async fn insert_restore_job(&self, job: &RestoreJob) -> Result<(), StoreError> {
        let op = format!(
            "inserting restore job {} of snapshot {} in cluster {}",
            job.id, job.snapshot_id, job.cluster_id
        );
        let done = stmt(q::INSERT_RESTORE_JOB)
            .bind(id_text(job.id))
            .bind(id_text(job.group_id))
            .bind(id_text(job.cluster_id))
            .bind(id_text(job.snapshot_id))
            .bind(micros(job.created))
            .bind(micros(job.expires))
            .bind(hex::encode(&job.token_sha256))
            .bind(i64::from(job.max_downloads))
            .bind(i64::from(job.downloads))
            .bind(&job.requested_by)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "{op}: no such snapshot in the cluster and group {}",
                job.group_id
            )));
        }
        Ok(())
    }

    async fn restore_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<RestoreJob>, StoreError> {
        let what = || format!("reading restore job {id} of cluster {cluster}");
        self.find(q::RESTORE_JOB, &[cluster, id], what, rows::restore_job)
            .await
    }

    async fn list_restore_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<RestoreJob>, u64), StoreError> {
        let op = format!("listing restore jobs of cluster {cluster}");
        let queries = (q::LIST_RESTORE_JOBS, q::COUNT_RESTORE_JOBS);
        self.list_page(queries, Some(cluster), page, &op, rows::restore_job)
            .await
    }

    async fn take_restore_download(&self, id: ObjectId) -> Result<Option<RestoreJob>, StoreError> {
        let what = || format!("counting a download of restore job {id}");
        self.find(q::TAKE_RESTORE_DOWNLOAD, &[id], what, rows::restore_job)
            .await
    }
}

/// A pack id read from the chunks table.
pub(crate) fn parse_pack_id(text: &str, op: &str) -> Result<ObjectId, StoreError> {
    text.parse().map_err(|_| {
        StoreError::Backend(format!(
            "{op}: table chunks holds a pack id that is not 24 hex digits"
        ))
    })
}
