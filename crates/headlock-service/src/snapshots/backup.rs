//! The backup: a tar stream or raw bytes chunked, sealed into packs, and committed
//! with its manifest (the pipeline is drawn in the module overview, [`super`]).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use headlock_core::model::{ChunkId, ChunkLocation, Cluster, SnapshotKind, SnapshotRecord};
use headlock_core::snapshot::chunker::{self, BoundaryKey};
use headlock_core::snapshot::path as path_rules;
use headlock_core::snapshot::tar_stream::{TarEntry, TarError, read_tar};
use headlock_core::snapshot::{
    ChunkCipher, ChunkIdKey, EntryType, Manifest, ManifestEntry, ManifestKind,
};
use headlock_core::store::SnapshotCommit;
use headlock_core::{ObjectId, StoreConflict, StoreError};
use tokio::io::AsyncRead;

use super::packs::{ChunkJobs, Packed, seal_pipeline};
use super::{SnapshotView, blob_err, manifest_path};
use crate::error::{BadRequest, Conflict};
use crate::lease::LeaseGuard;
use crate::{Actor, Result, Service, ServiceError};

/// The lease a backup holds from before its first upload until after its commit.
pub(crate) fn backup_lease(cluster: ObjectId, snapshot: ObjectId) -> String {
    format!("backup:{cluster}:{snapshot}")
}

/// A path of the archive for a message: at most 200 characters of it.
fn shown(path: &str) -> String {
    path.chars().take(200).collect()
}

/// A tar stream the ingestion refuses: the client's fault (400, `INVALID_ATTRIBUTE`), with
/// the reader's reason, which names the entry's offset and path.
impl From<TarError> for ServiceError {
    fn from(e: TarError) -> Self {
        ServiceError::invalid_input(format!("The archive is refused: {e}"))
    }
}

/// The chunking stage: runs on a blocking thread, reads the body, fills the manifest,
/// and sends new chunks to the workers.
struct Chunker<'a> {
    id_key: &'a ChunkIdKey,
    boundaries: chunker::Chunker,
    known: HashSet<ChunkId>,
    jobs: ChunkJobs,
    uses: Vec<ChunkId>,
    used: HashSet<ChunkId>,
    data_size: u64,
}

impl Chunker<'_> {
    fn chunk_file(&mut self, reader: impl Read) -> Result<Vec<(ChunkId, u32)>> {
        let mut chunks = Vec::new();
        for piece in self.boundaries.cut(reader) {
            let piece = piece.map_err(|e| BadRequest::UploadInterrupted(e.to_string()))?;
            let id = self.id_key.id(&piece.data);
            let len = piece.data.len() as u32;
            self.data_size += len as u64;
            if self.used.insert(id) {
                self.uses.push(id);
            }
            if self.known.insert(id) && self.jobs.send((id, piece.data)).is_err() {
                // The workers stopped: the pipeline failed downstream; its error wins.
                return Err(ServiceError::unexpected("backup pipeline stopped".into()));
            }
            chunks.push((id, len));
        }
        Ok(chunks)
    }

    /// A tar stream to a tree manifest, read by the one bounded tar reader of
    /// `headlock_core::snapshot::tar_stream` (its path rules and limits); every
    /// refusal is the client's fault (400).
    fn tree(&mut self, body: impl Read) -> Result<Manifest> {
        let mut entries = Vec::new();
        let mut kinds: HashMap<String, EntryType> = HashMap::new();
        read_tar(body, |mut e: TarEntry<'_>| -> Result<()> {
            if kinds.insert(e.path.clone(), e.kind).is_some() {
                return Err(ServiceError::invalid_input(format!(
                    "{} appears twice in the archive",
                    shown(&e.path)
                )));
            }
            let chunks = if e.kind == EntryType::File {
                let chunks = self.chunk_file(e.data())?;
                let got: u64 = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
                if got != e.size {
                    return Err(BadRequest::UploadInterrupted(format!(
                        "{}: the archive said {} bytes, the stream held {got}",
                        shown(&e.path),
                        e.size
                    ))
                    .into());
                }
                chunks
            } else {
                Vec::new()
            };
            entries.push(ManifestEntry {
                path: e.path,
                entry_type: e.kind,
                mode: e.mode & 0o7777,
                mtime: e.mtime,
                size: e.size,
                target: e.target,
                chunks,
                stamp: None,
            });
            Ok(())
        })?;
        // Parents need not come first in a tar stream: the tree is checked once every
        // path is known.
        for e in &entries {
            if let Some((above, kind)) =
                path_rules::non_directory_ancestor(&e.path, |p| kinds.get(p).copied())
            {
                let kind = match kind {
                    EntryType::File => "a regular file",
                    EntryType::Symlink => "a symbolic link",
                    EntryType::Dir => "a directory",
                };
                return Err(ServiceError::invalid_input(format!(
                    "{} is below {}, which is {kind} in the archive, not a directory",
                    shown(&e.path),
                    shown(above)
                )));
            }
        }
        Ok(Manifest {
            version: 1,
            kind: ManifestKind::Tree,
            source: None,
            entries,
        })
    }

    fn stream(&mut self, body: impl Read) -> Result<Manifest> {
        let chunks = self.chunk_file(body)?;
        let size = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
        Ok(Manifest {
            version: 1,
            kind: ManifestKind::Stream,
            source: None,
            entries: vec![ManifestEntry {
                path: "stream".into(),
                entry_type: EntryType::File,
                mode: 0o600,
                mtime: crate::now().unix_timestamp(),
                size,
                target: None,
                chunks,
                stamp: None,
            }],
        })
    }
}

impl Service {
    /// Takes a snapshot of `body` (a tar stream for [`SnapshotKind::Tree`], raw bytes for
    /// [`SnapshotKind::Stream`]) for one replica set, shard or config server replica set.
    pub async fn backup(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        kind: SnapshotKind,
        body: impl AsyncRead + Send + Unpin + 'static,
    ) -> Result<SnapshotView> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await?;
        if cluster.is_sharded_whole() {
            return Err(ServiceError::invalid_input(format!(
                "Cluster {} is a whole sharded cluster: back up each shard and the config server replica set by their own ids.",
                cluster.id
            )));
        }
        if !self.config_of(&cluster).await?.encryption_enabled {
            return Err(Conflict::EncryptionDisabledBackup(cluster.id).into());
        }
        self.refuse_if_key_not_active(&cluster).await?;
        let blobs = self.blobs()?.clone();
        let _shared = self.snapshot_locks.read(cluster.id).await;
        let snapshot_id = ObjectId::new();
        // Garbage collection on any node leaves the cluster's orphans alone while this
        // lease lives: the packs this backup uploads are orphans until its commit.
        let lease = self
            .try_lease(backup_lease(cluster.id, snapshot_id))
            .await?
            .ok_or_else(|| ServiceError::unexpected("a fresh backup lease was taken".into()))?;
        let (data_key_id, data_key) = self.data_key(&cluster).await?;
        let id_key = ChunkIdKey::derive(&data_key);
        let boundaries = BoundaryKey::derive(&data_key);
        let cipher = Arc::new(ChunkCipher::new(&data_key));
        drop(data_key);
        let manifest_cipher = cipher.clone();
        let known: HashSet<ChunkId> = self
            .store
            .chunk_ids(cluster.id)
            .await?
            .into_iter()
            .collect();
        let created = crate::now();

        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let packed = seal_pipeline(
            blobs.clone(),
            cluster.id,
            snapshot_id,
            cipher,
            written.clone(),
            None,
            move |jobs| {
                let mut chunker = Chunker {
                    id_key: &id_key,
                    boundaries: chunker::Chunker::new(boundaries),
                    known,
                    jobs,
                    uses: Vec::new(),
                    used: HashSet::new(),
                    data_size: 0,
                };
                let reader = tokio_util::io::SyncIoBridge::new(body);
                let manifest = match kind {
                    SnapshotKind::Tree => chunker.tree(reader),
                    SnapshotKind::Stream => chunker.stream(reader),
                };
                let Chunker {
                    uses, data_size, ..
                } = chunker;
                manifest.map(|m| (m, uses, data_size))
            },
        )
        .await;
        let outcome = match packed {
            Ok(Packed {
                produced: (manifest, uses, data_size),
                locations,
                ..
            }) => {
                let finished = FinishedUpload {
                    snapshot_id,
                    created,
                    kind,
                    data_key_id,
                    manifest: ManifestBody::Whole(manifest),
                    uses,
                    lengths: Vec::new(),
                    data_size,
                    locations,
                };
                self.finish_backup(
                    &cluster,
                    &manifest_cipher,
                    finished,
                    CommitLease::Backup(&lease),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(record) => self.snapshot_created(actor, &cluster, record).await,
            Err(e) => {
                // Nothing refers to what this backup wrote: remove it now (garbage
                // collection would, later).
                let mut paths =
                    std::mem::take(&mut *written.lock().expect("written list poisoned"));
                paths.push(manifest_path(cluster.id, snapshot_id));
                discard(&blobs, &paths).await;
                tracing::warn!(cluster = %cluster.id, snapshot = %snapshot_id, error = %e, "backup failed");
                Err(e)
            }
        }
    }
}

/// Deletes the objects of a backup (or a chunk upload) that will not be committed;
/// garbage collection removes any this cannot.
pub(super) async fn discard(blobs: &Arc<dyn headlock_core::BlobStore>, paths: &[String]) {
    for path in paths {
        if let Err(err) = blobs.delete(path).await {
            tracing::warn!(path, error = %err, "cannot remove the object of a failed backup; garbage collection will");
        }
    }
}

/// The lease a commit confirms just before it writes: a plain backup's (renewed in the
/// background by its guard), or an upload session's (renewed by each request).
pub(super) enum CommitLease<'a> {
    /// A plain backup's.
    Backup(&'a LeaseGuard),
    /// An upload session's: its name and holder.
    Upload {
        /// `backup:<cluster>:<upload>`.
        name: &'a str,
        /// `upload:<data key id>`.
        holder: &'a str,
    },
}

/// A backup's manifest before its commit: whole (a plain backup's, sealed at the
/// commit) or already sealed as it was received (an upload session's).
pub(super) enum ManifestBody {
    /// Every entry in memory.
    Whole(Manifest),
    /// A sealed v2 manifest ([`headlock_core::snapshot::frames::ManifestWriter`]) in an
    /// unlinked spool file ([`Service::spool_file`]), stored from there.
    Spooled(std::fs::File),
}

/// Everything a backup produced before its commit.
pub(super) struct FinishedUpload {
    pub(super) snapshot_id: ObjectId,
    pub(super) created: time::OffsetDateTime,
    pub(super) kind: SnapshotKind,
    pub(super) data_key_id: ObjectId,
    pub(super) manifest: ManifestBody,
    pub(super) uses: Vec<ChunkId>,
    /// The plaintext lengths a client's manifest gives `uses` (sorted then), checked
    /// by the commit; empty when the service cut the chunks itself.
    pub(super) lengths: Vec<u32>,
    pub(super) data_size: u64,
    pub(super) locations: Vec<ChunkLocation>,
}

impl Service {
    /// Audits and counts a committed snapshot; its view.
    pub(super) async fn snapshot_created(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        record: SnapshotRecord,
    ) -> Result<SnapshotView> {
        crate::metrics::backup_bytes(record.data_size_bytes);
        let event = actor.event(
            "SNAPSHOT_CREATED",
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!(
                "snapshot {} ({} bytes, {} stored)",
                record.id, record.data_size_bytes, record.stored_size_bytes
            )),
        );
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, "cannot record a snapshot in the audit trail");
        }
        self.view(cluster, record).await
    }

    /// Writes the manifest and commits the snapshot (see docs/design.md, step 4).
    pub(super) async fn finish_backup(
        &self,
        cluster: &Cluster,
        cipher: &ChunkCipher,
        up: FinishedUpload,
        lease: CommitLease<'_>,
    ) -> Result<SnapshotRecord> {
        let blobs = self.blobs()?;
        let path = manifest_path(cluster.id, up.snapshot_id);
        match up.manifest {
            ManifestBody::Whole(m) => {
                let sealed = cipher
                    .seal_manifest_v2(cluster.id, up.snapshot_id, &m)
                    .map_err(|e| ServiceError::unexpected(format!("sealing the manifest: {e}")))?;
                blobs.put(&path, sealed).await
            }
            ManifestBody::Spooled(file) => blobs.put_file(&path, file).await,
        }
        .map_err(blob_err)?;
        let mut record = SnapshotRecord {
            id: up.snapshot_id,
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            created: up.created,
            kind: up.kind,
            data_size_bytes: up.data_size,
            // Counted by the commit.
            stored_size_bytes: 0,
            file_size_bytes: up.data_size,
            expires: None,
            do_not_delete: false,
            data_key_id: up.data_key_id,
        };
        let commit = SnapshotCommit {
            snapshot: record.clone(),
            new_chunks: up.locations,
            uses: up.uses,
            lengths: up.lengths,
        };
        // The lease must still be ours at the commit, renewed just now, so that no
        // collection can have judged these packs orphans (see `collect_garbage`).
        let held = match lease {
            CommitLease::Backup(guard) => guard.confirm().await?,
            CommitLease::Upload { name, holder } => {
                self.store
                    .acquire_lease(name, holder, crate::now(), super::upload::SESSION_TTL)
                    .await?
            }
        };
        if !held {
            return Err(ServiceError::unexpected(
                "this backup's lease lapsed (the metadata store was out of reach too long); retry the backup".into(),
            ));
        }
        match self.store.commit_snapshot(&commit).await {
            Ok(stored) => {
                record.stored_size_bytes = stored;
                Ok(record)
            }
            Err(StoreError::Conflict(StoreConflict::ChunksNotStored { first, count })) => {
                Err(Conflict::ChunksNotStored {
                    first: first.to_string(),
                    count,
                }
                .into())
            }
            Err(StoreError::Precondition(why)) => Err(ServiceError::unexpected(format!(
                "a chunk this backup reused was removed meanwhile ({why}); retry the backup"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}
