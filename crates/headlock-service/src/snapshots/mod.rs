//! Snapshots: backup, restore, verify, delete, and garbage collection of what no
//! snapshot uses any more. The format (chunks, packs, manifests) and the write protocol
//! are in docs/design.md, "Snapshots"; `headlock_core::snapshot` implements the format,
//! this module the pipelines around it.
//!
//! Backup pipeline (bounded at every stage, so memory does not grow with the input):
//!
//! ```text
//!  body (AsyncRead) ─▶ [blocking thread] tar entries ─▶ FastCDC ─▶ keyed BLAKE3 id
//!        │                 known id? ─▶ manifest only
//!        │                 new id ───▶ bounded queue ─▶ [N worker threads] zstd + AES-GCM
//!        ▼                                                  │
//!   manifest, sizes                           bounded queue ▼
//!                                          [async task] pack buffer ─▶ BlobStore::put (24 MiB)
//! ```
//!
//! Nothing refers to a pack until the final metadata transaction, which happens after
//! every pack and the manifest are durable; a failed backup deletes what it wrote, and
//! garbage collection removes whatever a crash left.
//!
//! | File | What it owns |
//! |---|---|
//! | `mod.rs` | [`SnapshotView`], object paths, data keys, looking up a snapshot's cluster and record |
//! | `catalog.rs` | showing, listing, changing and deleting snapshot records |
//! | `backup.rs` | the backup: tar/stream chunking, sealing, the commit |
//! | `upload.rs` | upload sessions ([`UploadSession`]): the incremental protocol, where the client chunks and the service verifies, seals and commits |
//! | `packs.rs` | pack assembly and upload ([`PACK_TARGET`]), shared by backup and compromise re-encryption; the sealing pipeline backups and uploads share |
//! | `read.rs` | reading a snapshot back: its manifest and its chunks, checked |
//! | `restore.rs` | a restore link checked ([`RestoreLinkInfo`] for `HEAD`) and its download ([`RestoreDownload`]): prefetching chunks in order, writing tar or raw bytes |
//! | `restore_jobs.rs` | restore jobs and their one-time download links ([`RESTORE_LINK_HOURS`]) |
//! | `verify.rs` | verification ([`VerifyReport`], [`DamagedChunk`]) |
//! | `gc.rs` | garbage collection ([`GcReport`]) of packs, chunks and manifests no snapshot uses |

mod backup;
mod catalog;
mod gc;
mod packs;
mod read;
mod restore;
mod restore_jobs;
mod upload;
mod verify;

pub(crate) use backup::backup_lease;
pub use gc::GcReport;
pub use packs::PACK_TARGET;
pub(crate) use packs::{FirstError, Sealed, assemble_packs};
pub use read::ManifestStream;
pub use restore::{RestoreDownload, RestoreLinkInfo};
pub use restore_jobs::RESTORE_LINK_HOURS;
pub(crate) use upload::is_session_holder;
pub use upload::{
    ChunkUploadReport, KnownChunks, MAX_BATCH_BYTES, MAX_BATCH_CHUNKS, MAX_MANIFEST_LINE,
    MAX_QUERY_IDS, PARENT_CANDIDATES, ParentManifest, SESSION_TTL, UploadSession,
};
pub use verify::{DamagedChunk, VerifyReport};

use std::sync::Arc;

use headlock_core::envelope::{DataKey, WrapContext};
use headlock_core::model::{Cluster, Page, SnapshotRecord};
use headlock_core::{BlobError, BlobStore, ObjectId, StoreError};

use crate::error::{Conflict, NotFound, RequestedId, Unavailable};
use crate::{Actor, Result, Service, ServiceError};

/// A snapshot as the API shows it.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    /// The record.
    pub record: SnapshotRecord,
    /// Its cluster.
    pub cluster: Cluster,
    /// The master key that wraps the snapshot's data key now.
    pub master_key_uid: Option<headlock_core::KmipUid>,
}

fn pack_path(cluster: ObjectId, pack: ObjectId) -> String {
    format!("packs/{cluster}/{pack}")
}

fn manifest_path(cluster: ObjectId, snapshot: ObjectId) -> String {
    format!("manifests/{cluster}/{snapshot}")
}

/// Where the manifest of a snapshot rewritten under another data key goes (objects are
/// create-only, so it cannot take the place of the first one): see docs/design.md,
/// "Compromise recovery".
pub(crate) fn rekeyed_manifest_path(
    cluster: ObjectId,
    snapshot: ObjectId,
    data_key: ObjectId,
) -> String {
    format!("manifests/{cluster}/{snapshot}.{data_key}")
}

/// Every item of a paged store listing, 500 at a time.
pub(crate) async fn all_pages<T, Fut>(mut fetch: impl FnMut(Page) -> Fut) -> Result<Vec<T>>
where
    Fut: std::future::Future<Output = std::result::Result<(Vec<T>, u64), StoreError>>,
{
    let mut page = Page { num: 1, size: 500 };
    let mut out = Vec::new();
    loop {
        let (items, total) = fetch(page).await?;
        let last = items.is_empty() || u64::from(page.num) * u64::from(page.size) >= total;
        out.extend(items);
        if last {
            return Ok(out);
        }
        page.num += 1;
    }
}

/// Threads for a CPU-bound stage (sealing, reading and opening chunks): one a core,
/// two if the number of cores is unknown, at least one and at most `most`.
pub(crate) fn worker_threads(most: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, most)
}

/// A failure to create or write a manifest's spool file: the service's disk, not the
/// client's input (a full disk is `STORAGE_FULL`).
pub(crate) fn spool_error(kind: std::io::ErrorKind, why: &str) -> ServiceError {
    if matches!(
        kind,
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) {
        return Unavailable::StorageFull("a manifest's spool file".into()).into();
    }
    ServiceError::unexpected(format!("writing a manifest's spool file: {why}"))
}

pub(crate) fn blob_err(e: BlobError) -> ServiceError {
    match e {
        BlobError::NoSpace(path) => Unavailable::StorageFull(path).into(),
        other => Unavailable::Storage(other.to_string()).into(),
    }
}

impl Service {
    /// Where packs and manifests go.
    pub(crate) fn blobs(&self) -> Result<&Arc<dyn BlobStore>> {
        self.blobs
            .as_ref()
            .ok_or_else(|| ServiceError::unexpected("this service has no blob store".into()))
    }

    /// Gives the service a blob store for packs and manifests.
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Where a commit spools its sealed manifest until the blob store has it (unlinked
    /// files, gone when closed, also after a crash): a directory on disk, e.g.
    /// `<data dir>/tmp`, created when missing. The system's temporary directory when
    /// not set (which may be memory: tmpfs).
    pub fn with_spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(Arc::from(dir.into()));
        self
    }

    /// A new unlinked file in the spool directory.
    pub(crate) fn spool_file(&self) -> Result<std::fs::File> {
        let made = match &self.spool_dir {
            Some(dir) => {
                std::fs::create_dir_all(&**dir).and_then(|()| tempfile::tempfile_in(&**dir))
            }
            None => tempfile::tempfile(),
        };
        made.map_err(|e| spool_error(e.kind(), &e.to_string()))
    }

    /// The data key new backups of the cluster use (its newest: after a compromise the
    /// one made then), unwrapped under its current master key (one KMIP Get).
    async fn data_key(&self, cluster: &Cluster) -> Result<(ObjectId, DataKey)> {
        let record = self
            .store
            .data_keys(cluster.id)
            .await?
            .into_iter()
            .last()
            .ok_or(Conflict::EncryptionDisabledBackup(cluster.id))?;
        let key = self.unwrap_data_key(cluster, &record).await?;
        Ok((record.id, key))
    }

    /// The cluster's data key `id` (a snapshot's own), unwrapped.
    pub(crate) async fn data_key_by_id(&self, cluster: &Cluster, id: ObjectId) -> Result<DataKey> {
        let record = self
            .store
            .data_keys(cluster.id)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| {
                ServiceError::unexpected(format!("cluster {} has no data key {id}", cluster.id))
            })?;
        self.unwrap_data_key(cluster, &record).await
    }

    async fn unwrap_data_key(
        &self,
        cluster: &Cluster,
        record: &headlock_core::model::DataKeyRecord,
    ) -> Result<DataKey> {
        let material = self
            .keys
            .master_key_material(&record.master_key_uid)
            .await?;
        let cluster_id = cluster.id.to_string();
        let key = DataKey::unwrap(
            &record.wrapped,
            &material,
            &WrapContext {
                cluster_id: &cluster_id,
                master_key_uid: record.master_key_uid.as_str(),
            },
        )
        .map_err(|e| {
            ServiceError::unexpected(format!(
                "data key {} of cluster {} does not unwrap: {e}",
                record.id, cluster.id
            ))
        })?;
        Ok(key)
    }

    async fn snapshot_cluster(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        write: bool,
    ) -> Result<Cluster> {
        let group = if write {
            self.groups.admin_group(actor, group_id).await?
        } else {
            self.groups.readable_group(actor, group_id).await?
        };
        self.cluster_in(&group, cluster_id).await
    }

    async fn view(&self, cluster: &Cluster, record: SnapshotRecord) -> Result<SnapshotView> {
        let master_key_uid = self
            .store
            .current_master_key(cluster.id)
            .await?
            .map(|k| k.kmip_uid);
        Ok(SnapshotView {
            record,
            cluster: cluster.clone(),
            master_key_uid,
        })
    }

    async fn snapshot_record(
        &self,
        cluster: &Cluster,
        snapshot_id: &str,
    ) -> Result<SnapshotRecord> {
        let id: ObjectId = snapshot_id.parse().map_err(|_| {
            NotFound::Snapshot(RequestedId::Invalid(crate::groups::truncate(snapshot_id)))
        })?;
        self.store
            .snapshot(cluster.id, id)
            .await?
            .ok_or_else(|| NotFound::Snapshot(id.into()).into())
    }
}
