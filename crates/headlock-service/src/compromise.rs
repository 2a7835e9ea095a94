//! Compromise recovery: when a cluster's master key AND its stored (wrapped) data keys
//! may both have leaked, a rotation alone is not enough, since whoever holds an old
//! data key can still read every snapshot sealed under it. Recovery has three steps (see
//! docs/design.md, "Compromise recovery"):
//!
//! 1. a rotation of type [`RotationType::Compromise`] ([`crate::rotation`]): a new
//!    master key, the old one revoked as KMIP "Key Compromise" (state Compromised), the
//!    data keys re-wrapped under the new key, plus a NEW data key that new backups use
//!    from the commit on;
//! 2. a [`ReencryptionJob`], recorded before the rotation's intent is deleted (or by
//!    reconciliation of the committed intent after a crash), that rewrites every
//!    snapshot still under another data key under the new one: one snapshot at a time,
//!    each switched in one store transaction (new chunk records and references, the
//!    snapshot's `data_key_id`, the job's progress), its manifest rewritten as
//!    `manifests/<cluster>/<snapshot>.<data key>` (objects are create-only);
//! 3. once no snapshot is left under another data key and no backup that may have
//!    taken an old key is in flight, one transaction deletes the other data keys
//!    (`DATA_KEY_DESTROYED`) and ends the job.
//!
//! Several nodes: the job runs under the lease `reencrypt:<job>` (one node works on a
//! job at a time), each snapshot's rewrite under `backup:<cluster>:<snapshot>` and the
//! cluster's shared snapshot lock (so garbage collection, here or on another node,
//! leaves the new packs alone until the switch commits). A job whose node died is
//! picked up by the maintenance tick of any node ([`Service::resume_reencryption_jobs`])
//! once its lease lapses; a restarted node takes its own over at once.
//!
//! While a job runs, backups use the new data key, restores and verification read each
//! snapshot with its own data key, and garbage collection removes the old chunks and
//! manifests once no snapshot uses them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headlock_core::model::{
    ChunkId, Cluster, Page, ReencryptionJob, ReencryptionStatus, RotationType, SnapshotRecord,
};
use headlock_core::snapshot::{ChunkCipher, ChunkIdKey};
use headlock_core::store::{ReencryptCommit, ReencryptFinish};
use headlock_core::{ObjectId, StoreConflict, StoreError};
use tokio::sync::mpsc;

use crate::error::{Conflict, Internal, NotFound, RequestedId};
use crate::snapshots::{
    FirstError, Sealed, all_pages, assemble_packs, backup_lease, blob_err, is_session_holder,
    rekeyed_manifest_path,
};
use crate::{Actor, Result, Service, ServiceError};

/// Audit event type of a re-encryption job's start.
pub const STARTED_EVENT: &str = "REENCRYPTION_STARTED";
/// Audit event type of a re-encryption job's end (outcome `SUCCESS` or `FAILURE`).
pub const ENDED_EVENT: &str = "REENCRYPTION_FINISHED";
/// Audit event type of a data key deleted at the end of a job.
pub const DATA_KEY_DESTROYED_EVENT: &str = "DATA_KEY_DESTROYED";

/// How long a job waits between two looks at backups in flight before it ends.
const BACKUP_WAIT: Duration = Duration::from_millis(250);

/// The jobs this process is working on (so that the maintenance tick does not start a
/// second worker on a job whose lease this node already holds).
#[derive(Clone, Default)]
pub(crate) struct RunningJobs(Arc<Mutex<HashSet<ObjectId>>>);

/// Removes a job from [`RunningJobs`] when its worker ends, however it ends.
struct RunningSlot(RunningJobs, ObjectId);

impl Drop for RunningSlot {
    fn drop(&mut self) {
        self.0
            .0
            .lock()
            .expect("running jobs poisoned")
            .remove(&self.1);
    }
}

impl RunningJobs {
    fn claim(&self, job: ObjectId) -> Option<RunningSlot> {
        let mut set = self.0.lock().expect("running jobs poisoned");
        set.insert(job).then(|| RunningSlot(self.clone(), job))
    }
}

/// A job id from the path; an id that does not parse is a job that does not exist.
fn parse_job_id(job_id: &str) -> Result<ObjectId> {
    job_id.parse().map_err(|_| {
        NotFound::ReencryptionJob(RequestedId::Invalid(crate::groups::truncate(job_id))).into()
    })
}

impl Service {
    /// Compromise recovery of one replica set, shard or config server replica set, or of
    /// every part of a whole sharded cluster (`POST .../encryptionKey/compromised`):
    /// rotates the master key as a compromise and starts a re-encryption job per part,
    /// in the background. `KEY_CHANGE_IN_PROGRESS` if a part already has a running job.
    pub async fn report_compromise(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<Vec<ReencryptionJob>> {
        let group = self.groups.admin_group(actor, group_id).await?;
        let (cluster, config) = self.cluster_and_config(&group, cluster_id).await?;
        if !config.encryption_enabled {
            return Err(Conflict::EncryptionDisabledRotate(cluster.id).into());
        }
        let parts = if cluster.is_sharded_whole() {
            self.store.cluster_parts(cluster.id).await?
        } else {
            vec![cluster]
        };
        for part in &parts {
            if self.running_job_of(part.id).await?.is_some() {
                return Err(Conflict::KeyChangeInProgress(part.id).into());
            }
        }
        let mut jobs = Vec::new();
        for part in &parts {
            self.rotate(actor, part, RotationType::Compromise).await?;
            let job = self.running_job_of(part.id).await?.ok_or_else(|| {
                ServiceError::unexpected(format!(
                    "the re-encryption job of cluster {} is not recorded yet; it will be by reconciliation",
                    part.id
                ))
            })?;
            self.spawn_reencryption(job.id);
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// One re-encryption job of a cluster (of any part, for a whole sharded cluster).
    pub async fn reencryption_job(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        job_id: &str,
    ) -> Result<ReencryptionJob> {
        let group = self.groups.readable_group(actor, group_id).await?;
        let cluster = self.cluster_in(&group, cluster_id).await?;
        let id = parse_job_id(job_id)?;
        for part in self.data_parts(&cluster).await? {
            if let Some(job) = self.store.reencryption_job(part.id, id).await? {
                return Ok(job);
            }
        }
        Err(NotFound::ReencryptionJob(id.into()).into())
    }

    /// A page of a cluster's re-encryption jobs, newest first (of every part, for a whole
    /// sharded cluster).
    pub async fn list_reencryption_jobs(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        page: Page,
    ) -> Result<(Vec<ReencryptionJob>, u64)> {
        let group = self.groups.readable_group(actor, group_id).await?;
        let cluster = self.cluster_in(&group, cluster_id).await?;
        if !cluster.is_sharded_whole() {
            return Ok(self.store.list_reencryption_jobs(cluster.id, page).await?);
        }
        let mut all = Vec::new();
        for part in self.data_parts(&cluster).await? {
            all.extend(all_pages(|p| self.store.list_reencryption_jobs(part.id, p)).await?);
        }
        all.sort_by_key(|j| std::cmp::Reverse((j.created, j.id)));
        let total = all.len() as u64;
        let start = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let items = all
            .into_iter()
            .skip(start)
            .take(page.size as usize)
            .collect();
        Ok((items, total))
    }

    async fn data_parts(&self, cluster: &Cluster) -> Result<Vec<Cluster>> {
        Ok(if cluster.is_sharded_whole() {
            self.store.cluster_parts(cluster.id).await?
        } else {
            vec![cluster.clone()]
        })
    }

    async fn running_job_of(&self, cluster: ObjectId) -> Result<Option<ReencryptionJob>> {
        Ok(self
            .store
            .running_reencryption_jobs()
            .await?
            .into_iter()
            .find(|j| j.cluster_id == cluster))
    }

    /// Records the re-encryption job of a cluster that has more than one data key (after
    /// a compromise rotation committed), unless one is running: the job moves every
    /// snapshot to the newest data key. Called by the rotation before its intent goes,
    /// and by reconciliation of a committed compromise intent.
    pub(crate) async fn ensure_reencryption_job(
        &self,
        requested_by: &str,
        cluster: &Cluster,
    ) -> Result<Option<ReencryptionJob>> {
        if let Some(job) = self.running_job_of(cluster.id).await? {
            return Ok(Some(job));
        }
        let keys = self.store.data_keys(cluster.id).await?;
        let Some(newest) = keys.last() else {
            return Ok(None);
        };
        if keys.len() < 2 {
            return Ok(None);
        }
        let pending: Vec<SnapshotRecord> = all_pages(|p| self.store.list_snapshots(cluster.id, p))
            .await?
            .into_iter()
            .filter(|s| s.data_key_id != newest.id)
            .collect();
        let job = ReencryptionJob {
            id: ObjectId::new(),
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            new_data_key_id: newest.id,
            status: ReencryptionStatus::Running,
            created: crate::now(),
            finished: None,
            snapshots_total: pending.len() as u64,
            snapshots_done: 0,
            bytes_total: pending.iter().map(|s| s.data_size_bytes).sum(),
            bytes_done: 0,
            requested_by: requested_by.to_string(),
            error: None,
        };
        let audit = crate::audit_event(
            STARTED_EVENT,
            Some(cluster.group_id),
            Some(cluster.id),
            Some(requested_by),
            None,
            "SUCCESS",
            Some(&format!(
                "re-encryption job {} of {} snapshot(s), {} bytes, to data key {}",
                job.id, job.snapshots_total, job.bytes_total, job.new_data_key_id
            )),
        );
        match self.store.insert_reencryption_job(&job, &audit).await {
            Ok(()) => Ok(Some(job)),
            Err(StoreError::Conflict(StoreConflict::ReencryptionJobRunning)) => {
                self.running_job_of(cluster.id).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a worker for every running job that no node works on (their lease is free,
    /// or held by this node's previous life): after a crash, a restart, or a node's
    /// death. Run by the maintenance loop; returns how many workers it started.
    pub async fn resume_reencryption_jobs(&self) -> Result<usize> {
        if self.blobs.is_none() {
            return Ok(0);
        }
        let mut started = 0;
        for job in self.store.running_reencryption_jobs().await? {
            if self
                .reencrypting
                .0
                .lock()
                .expect("running jobs poisoned")
                .contains(&job.id)
            {
                continue;
            }
            self.spawn_reencryption(job.id);
            started += 1;
        }
        Ok(started)
    }

    /// Runs a job in the background (it logs its own failures; the maintenance tick
    /// tries again).
    fn spawn_reencryption(&self, job: ObjectId) {
        let service = self.clone();
        tokio::spawn(async move {
            if let Err(e) = service.run_reencryption(job).await {
                tracing::warn!(%job, error = %e, "re-encryption job interrupted; it will be resumed");
            }
        });
    }

    /// Works on one job until it ends, unless another worker (here or on another node)
    /// has it. An error leaves the job running, for a later try.
    pub(crate) async fn run_reencryption(&self, job_id: ObjectId) -> Result<()> {
        let Some(_slot) = self.reencrypting.claim(job_id) else {
            return Ok(());
        };
        let Some(lease) = self.try_lease(format!("reencrypt:{job_id}")).await? else {
            return Ok(());
        };
        let Some(job) = self
            .store
            .running_reencryption_jobs()
            .await?
            .into_iter()
            .find(|j| j.id == job_id)
        else {
            return Ok(());
        };
        let Some(cluster) = self.store.cluster_any_group(job.cluster_id).await? else {
            return self
                .end_job(&job, None, Some("the cluster was deleted".into()))
                .await;
        };
        loop {
            if !lease.confirm().await? {
                return Err(ServiceError::unexpected(format!(
                    "the lease of re-encryption job {job_id} lapsed"
                )));
            }
            let mut pending: Vec<SnapshotRecord> =
                all_pages(|p| self.store.list_snapshots(cluster.id, p))
                    .await?
                    .into_iter()
                    .filter(|s| s.data_key_id != job.new_data_key_id)
                    .collect();
            pending.sort_by_key(|s| (s.created, s.id));
            if pending.is_empty() {
                // A backup that took an old data key before the compromise may still be
                // in flight: its lease (taken before it read the key) says so. Once
                // none is, every snapshot under an old key is committed and counted
                // by the store's check below. That is a node's lease: a plain backup's
                // for its whole request, an upload commit's for the commit (taken
                // before it checks the session's key again). An upload session's own
                // lease does not count: a session under an old key is refused as
                // stale from the compromise on, so only a commit already in flight can
                // add a snapshot under that key, and one under the new key cannot at
                // all. (A session lease lives SESSION_TTL after its last request: an
                // abandoned one would hold the job for 15 minutes, and while backups
                // go on some always would be open.)
                if self
                    .store
                    .live_leases(&format!("backup:{}:", cluster.id), crate::now())
                    .await?
                    .iter()
                    .any(|l| !is_session_holder(&l.holder))
                {
                    tokio::time::sleep(BACKUP_WAIT).await;
                    continue;
                }
                match self.end_job(&job, Some(&cluster), None).await {
                    Err(ServiceError::Internal(Internal::Store(StoreError::Precondition(_)))) => {
                        continue;
                    }
                    other => return other,
                }
            }
            let mut switched_any = false;
            for snapshot in pending {
                match self.reencrypt_snapshot(&cluster, &job, &snapshot).await {
                    Ok(switched) => switched_any |= switched,
                    Err(ServiceError::Internal(Internal::SnapshotDamaged(why))) => {
                        return self.end_job(&job, None, Some(why)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !switched_any {
                // Every snapshot changed under the rewrite (deleted, or a chunk it reused
                // was collected): look again shortly rather than spin.
                tokio::time::sleep(BACKUP_WAIT).await;
            }
        }
    }

    /// Ends a job: finished (`cluster` given: the other data keys are deleted) or
    /// failed (`error`), with its audit events.
    async fn end_job(
        &self,
        job: &ReencryptionJob,
        cluster: Option<&Cluster>,
        error: Option<String>,
    ) -> Result<()> {
        let finished = cluster.is_some();
        let mut audit = Vec::new();
        if let Some(cluster) = cluster {
            for key in self.store.data_keys(cluster.id).await? {
                if key.id != job.new_data_key_id {
                    audit.push(crate::audit_event(
                        DATA_KEY_DESTROYED_EVENT,
                        Some(job.group_id),
                        Some(job.cluster_id),
                        Some(&job.requested_by),
                        None,
                        "SUCCESS",
                        Some(&format!(
                            "data key {} deleted: every snapshot is under data key {} (re-encryption job {})",
                            key.id, job.new_data_key_id, job.id
                        )),
                    ));
                }
            }
        }
        audit.push(crate::audit_event(
            ENDED_EVENT,
            Some(job.group_id),
            Some(job.cluster_id),
            Some(&job.requested_by),
            None,
            if finished { "SUCCESS" } else { "FAILURE" },
            Some(&match &error {
                None => format!("re-encryption job {} finished", job.id),
                Some(why) => format!("re-encryption job {} failed: {why}", job.id),
            }),
        ));
        let finish = ReencryptFinish {
            job_id: job.id,
            cluster_id: job.cluster_id,
            status: if finished {
                ReencryptionStatus::Finished
            } else {
                ReencryptionStatus::Failed
            },
            finished: crate::now(),
            keep_data_key_id: finished.then_some(job.new_data_key_id),
            error,
            audit,
        };
        self.store.finish_reencryption_job(&finish).await?;
        tracing::info!(job = %job.id, cluster = %job.cluster_id, status = %finish.status, "re-encryption job ended");
        Ok(())
    }

    /// Rewrites one snapshot under the job's data key and switches it in one store
    /// transaction. `false` if there was nothing to do (it was switched or deleted
    /// meanwhile). `SnapshotDamaged` if stored data fails its checks.
    async fn reencrypt_snapshot(
        &self,
        cluster: &Cluster,
        job: &ReencryptionJob,
        snapshot: &SnapshotRecord,
    ) -> Result<bool> {
        let blobs = self.blobs()?.clone();
        let _shared = self.snapshot_locks.read(cluster.id).await;
        let lease = self
            .try_lease(backup_lease(cluster.id, snapshot.id))
            .await?
            .ok_or_else(|| {
                ServiceError::unexpected(format!(
                    "snapshot {} is being rewritten by another node",
                    snapshot.id
                ))
            })?;
        // Read again under the lease: still to do?
        let Some(record) = self.store.snapshot(cluster.id, snapshot.id).await? else {
            return Ok(false);
        };
        if record.data_key_id == job.new_data_key_id {
            return Ok(false);
        }
        let (mut source, old_cipher) = self.chunk_reader(cluster, &record).await?;
        let mut manifest = self.open_manifest(&old_cipher, cluster.id, &record).await?;
        let new_key = self.data_key_by_id(cluster, job.new_data_key_id).await?;
        let new_ids = ChunkIdKey::derive(&new_key);
        let new_cipher = ChunkCipher::new(&new_key);
        drop(new_key);
        let mut known: HashSet<ChunkId> = self
            .store
            .chunk_ids(cluster.id)
            .await?
            .into_iter()
            .collect();
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for entry in &manifest.entries {
            for (id, _) in &entry.chunks {
                if seen.insert(*id) {
                    order.push(*id);
                }
            }
        }
        drop(seen);
        self.locate_chunks(&mut source, &order).await?;

        // The pack writer takes sealed chunks in groups; one at a time here.
        let (sealed_tx, sealed_rx) = mpsc::channel::<Vec<Sealed>>(4);
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let failure = FirstError::default();
        let packer = tokio::spawn(assemble_packs(
            blobs.clone(),
            cluster.id,
            record.id,
            sealed_rx,
            written.clone(),
            failure.clone(),
        ));
        let (cluster_id, snapshot_id) = (cluster.id, record.id);
        let rewrite = tokio::task::spawn_blocking(move || {
            let mut map: HashMap<ChunkId, ChunkId> = HashMap::new();
            let mut sealed_bytes = 0u64;
            for old in order {
                let plain = source.read(old).map_err(|reason| {
                    Internal::SnapshotDamaged(format!("snapshot {snapshot_id}: {reason}"))
                })?;
                let new = new_ids.id(&plain);
                map.insert(old, new);
                if known.insert(new) {
                    let record = new_cipher
                        .seal_chunk(cluster_id, snapshot_id, new, &plain)
                        .map_err(|e| {
                            ServiceError::unexpected(format!("sealing chunk {new}: {e}"))
                        })?;
                    sealed_bytes += plain.len() as u64;
                    let sealed = Sealed {
                        id: new,
                        plaintext_length: plain.len() as u32,
                        record,
                    };
                    if sealed_tx.blocking_send(vec![sealed]).is_err() {
                        return Err(ServiceError::unexpected("the pack writer stopped".into()));
                    }
                }
            }
            drop(sealed_tx);
            Ok((map, sealed_bytes, new_cipher))
        });
        let rewritten = rewrite
            .await
            .map_err(|e| ServiceError::unexpected(format!("re-encryption thread failed: {e}")))
            .and_then(|r| r);
        let packed = packer
            .await
            .map_err(|e| ServiceError::unexpected(format!("pack writer failed: {e}")))
            .and_then(|r| r);
        let manifest_path = rekeyed_manifest_path(cluster.id, record.id, job.new_data_key_id);
        let outcome = match (rewritten, packed, failure.take()) {
            (Ok((map, sealed_bytes, new_cipher)), Ok((locations, _)), None) => {
                for entry in &mut manifest.entries {
                    for (id, _) in &mut entry.chunks {
                        *id = map[id];
                    }
                }
                let commit = ReencryptCommit {
                    job_id: job.id,
                    cluster_id: cluster.id,
                    snapshot_id: record.id,
                    from_data_key_id: record.data_key_id,
                    to_data_key_id: job.new_data_key_id,
                    new_chunks: locations,
                    uses: map.values().copied().collect(),
                    bytes: record.data_size_bytes,
                };
                let sealed = new_cipher
                    .seal_manifest_v2(cluster.id, record.id, &manifest)
                    .map_err(|e| ServiceError::unexpected(format!("sealing the manifest: {e}")));
                match sealed {
                    Ok(sealed) => self
                        .switch(&blobs, &manifest_path, sealed, &commit, &lease)
                        .await
                        .map(|switched| (switched, sealed_bytes)),
                    Err(e) => Err(e),
                }
            }
            (rewritten, packed, first) => Err(first
                .or(packed.err())
                .or(rewritten.err())
                .unwrap_or_else(|| ServiceError::unexpected("re-encryption failed".into()))),
        };
        match outcome {
            Ok((true, sealed_bytes)) => {
                crate::metrics::reencrypted_bytes(sealed_bytes);
                tracing::info!(job = %job.id, snapshot = %record.id, "snapshot re-encrypted under the new data key");
                crate::test_hooks::crash_point("reencrypt-after-snapshot");
                Ok(true)
            }
            other => {
                // Nothing refers to what this rewrite wrote: remove it now (garbage
                // collection would, later).
                let paths = std::mem::take(&mut *written.lock().expect("written list poisoned"));
                for path in paths.iter().chain([&manifest_path]) {
                    if let Err(err) = blobs.delete(path).await {
                        tracing::warn!(path, error = %err, "cannot remove an object of an interrupted rewrite; garbage collection will");
                    }
                }
                other.map(|(switched, _)| switched)
            }
        }
    }

    /// Writes the rewritten manifest and commits the switch; `false` if the snapshot
    /// was switched or deleted meanwhile.
    async fn switch(
        &self,
        blobs: &Arc<dyn headlock_core::BlobStore>,
        manifest_path: &str,
        sealed: Vec<u8>,
        commit: &ReencryptCommit,
        lease: &crate::lease::LeaseGuard,
    ) -> Result<bool> {
        // A rewrite interrupted after its manifest was written left it behind (nothing
        // refers to it: the snapshot is still under its old key); puts are create-only.
        blobs.delete(manifest_path).await.map_err(blob_err)?;
        blobs.put(manifest_path, sealed).await.map_err(blob_err)?;
        if !lease.confirm().await? {
            return Err(ServiceError::unexpected(format!(
                "the lease of snapshot {} lapsed during its rewrite",
                commit.snapshot_id
            )));
        }
        match self.store.commit_reencrypted_snapshot(commit).await {
            Ok(()) => Ok(true),
            Err(StoreError::Precondition(why)) => {
                tracing::info!(snapshot = %commit.snapshot_id, %why, "snapshot not switched");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }
}
