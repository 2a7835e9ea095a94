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

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};

use headlock_core::envelope::{DataKey, WrapContext};
use headlock_core::model::{
    ChunkId, ChunkLocation, Cluster, Page, RestoreJob, SnapshotKind, SnapshotRecord,
};
use headlock_core::snapshot::path as path_rules;
use headlock_core::snapshot::{
    AVG_CHUNK, ChunkCipher, ChunkIdKey, EntryType, MAX_CHUNK, MIN_CHUNK, Manifest, ManifestEntry,
    ManifestKind,
};
use headlock_core::store::SnapshotCommit;
use headlock_core::{BlobError, BlobStore, ObjectId, StoreError};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

use crate::error::{BadRequest, Conflict, Internal, NotFound, RequestedId, Unavailable};
use crate::groups::parse_cluster_id;
use crate::lease::LeaseGuard;
use crate::{Actor, Result, Service, ServiceError};

/// A pack is closed once it holds this many bytes. With the largest chunk on top, a
/// pack buffer stays under glibc's 32 MiB ceiling for its dynamic mmap threshold, so
/// freed pack buffers are reused from the heap instead of being page-faulted in afresh
/// for every pack (the figures: docs/benchmarks.md, "Backup and restore, beside restic").
pub const PACK_TARGET: usize = 24 * 1024 * 1024;
/// How long a restore link works.
pub const RESTORE_LINK_HOURS: i64 = 1;

/// A snapshot as the API shows it.
#[derive(Debug, Clone)]
pub struct SnapshotView {
    /// The record.
    pub record: SnapshotRecord,
    /// Its cluster.
    pub cluster: Cluster,
    /// The master key that wraps the snapshot's data key now.
    pub master_key_uid: Option<String>,
}

/// One damaged chunk found by [`Service::verify_snapshot`].
#[derive(Debug, Clone)]
pub struct DamagedChunk {
    /// The chunk.
    pub chunk_id: ChunkId,
    /// Its pack.
    pub pack_id: ObjectId,
    /// What is wrong.
    pub reason: String,
    /// Every snapshot of the cluster that uses it.
    pub snapshot_ids: Vec<ObjectId>,
}

/// What [`Service::verify_snapshot`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The snapshot.
    pub snapshot_id: ObjectId,
    /// Whether the manifest opened.
    pub manifest_ok: bool,
    /// What was wrong with the manifest.
    pub manifest_error: Option<String>,
    /// Chunks read and checked.
    pub chunks_checked: u64,
    /// Plaintext bytes checked.
    pub bytes_checked: u64,
    /// Damaged chunks.
    pub damaged: Vec<DamagedChunk>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn ok(&self) -> bool {
        self.manifest_ok && self.damaged.is_empty()
    }
}

/// A restore download: the snapshot's data as a stream.
pub struct RestoreDownload {
    /// Tree (a tar stream) or stream (raw bytes).
    pub kind: SnapshotKind,
    /// Exact length, when known in advance (streams).
    pub content_length: Option<u64>,
    /// The bytes. Ends early (an error is logged naming the chunk and pack) if stored
    /// data turns out to be damaged mid-way: never wrong bytes.
    pub reader: tokio::io::DuplexStream,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Pack objects deleted.
    pub packs_deleted: usize,
    /// Manifests of snapshots that were never committed, deleted.
    pub manifests_deleted: usize,
    /// Clusters left for a later round because another node was backing them up.
    pub clusters_skipped: usize,
}

/// The lease a backup holds from before its first upload until after its commit.
pub(crate) fn backup_lease(cluster: ObjectId, snapshot: ObjectId) -> String {
    format!("backup:{cluster}:{snapshot}")
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

/// The snapshot id and, for a rewritten manifest, the data key id a manifest object is
/// named by (`<snapshot>` or `<snapshot>.<data key>`).
fn manifest_name(path: &str) -> Option<(ObjectId, Option<ObjectId>)> {
    let name = path.rsplit('/').next()?;
    match name.split_once('.') {
        None => Some((name.parse().ok()?, None)),
        Some((snapshot, key)) => Some((snapshot.parse().ok()?, Some(key.parse().ok()?))),
    }
}

/// The id an object is named by (the last segment of its path).
fn object_id_of(path: &str) -> Option<ObjectId> {
    path.rsplit('/').next().and_then(|s| s.parse().ok())
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

pub(crate) fn blob_err(e: BlobError) -> ServiceError {
    match e {
        BlobError::NoSpace(path) => Unavailable::StorageFull(path).into(),
        other => Unavailable::Storage(other.to_string()).into(),
    }
}

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

/// Normalises a tar path: relative, `/`-separated, no `.`/`..` components (the rules
/// of `headlock_core::snapshot::path`).
fn clean_path(raw: &std::path::Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in path_rules::tar_components(raw) {
        match c {
            Ok(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| {
                        ServiceError::invalid_input("a path in the archive is not UTF-8".into())
                    })?
                    .to_string(),
            ),
            Err(_) => {
                return Err(ServiceError::invalid_input(format!(
                    "path {:?} in the archive is absolute or leaves the tree",
                    raw.display()
                        .to_string()
                        .chars()
                        .take(200)
                        .collect::<String>()
                )));
            }
        }
    }
    let path = parts.join("/");
    if path_rules::check_len(path.len()).is_err() {
        return Err(ServiceError::invalid_input(format!(
            "a path in the archive is longer than {} bytes",
            path_rules::MAX_PATH_LEN
        )));
    }
    Ok(path)
}

/// The chunking stage: runs on a blocking thread, reads the body, fills the manifest,
/// and sends new chunks to the workers.
struct Chunker<'a> {
    id_key: &'a ChunkIdKey,
    known: HashSet<ChunkId>,
    jobs: std::sync::mpsc::SyncSender<(ChunkId, Vec<u8>)>,
    uses: Vec<ChunkId>,
    used: HashSet<ChunkId>,
    data_size: u64,
}

impl Chunker<'_> {
    fn chunk_file(&mut self, reader: impl Read) -> Result<Vec<(ChunkId, u32)>> {
        let mut chunks = Vec::new();
        for piece in fastcdc::v2020::StreamCDC::new(reader, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            let piece = piece.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => {
                    BadRequest::UploadInterrupted(io.to_string()).into()
                }
                other => ServiceError::unexpected(format!("chunking failed: {other}")),
            })?;
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

    fn tree(&mut self, body: impl Read) -> Result<Manifest> {
        let mut archive = tar::Archive::new(body);
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        let iter = archive.entries().map_err(|e| {
            ServiceError::invalid_input(format!("the body is not a tar stream: {e}"))
        })?;
        for entry in iter {
            let mut entry = entry.map_err(|e| {
                ServiceError::invalid_input(format!("the tar stream is damaged: {e}"))
            })?;
            let header = entry.header().clone();
            let path = clean_path(&entry.path().map_err(|e| {
                ServiceError::invalid_input(format!("bad path in the tar stream: {e}"))
            })?)?;
            if path.is_empty() {
                continue; // the archive's root directory ("./")
            }
            if !seen.insert(path.clone()) {
                return Err(ServiceError::invalid_input(format!(
                    "{path} appears twice in the archive"
                )));
            }
            let mode = header.mode().unwrap_or(0o644) & 0o7777;
            let mtime = header.mtime().unwrap_or(0) as i64;
            let kind = header.entry_type();
            let (entry_type, target, chunks, size) = if kind.is_file() {
                let size = header.size().unwrap_or(0);
                let chunks = self.chunk_file(&mut entry)?;
                let got: u64 = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
                if got != size {
                    return Err(BadRequest::UploadInterrupted(format!(
                        "{path}: the archive said {size} bytes, the stream held {got}"
                    ))
                    .into());
                }
                (EntryType::File, None, chunks, size)
            } else if kind.is_dir() {
                (EntryType::Dir, None, Vec::new(), 0)
            } else if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .and_then(|t| t.to_str().map(str::to_string))
                    .ok_or_else(|| {
                        ServiceError::invalid_input(format!("symlink {path} has no UTF-8 target"))
                    })?;
                (EntryType::Symlink, Some(target), Vec::new(), 0)
            } else {
                return Err(ServiceError::invalid_input(format!(
                    "{path}: unsupported entry type {:?} (regular files, directories and symlinks only)",
                    kind
                )));
            };
            entries.push(ManifestEntry {
                path,
                entry_type,
                mode,
                mtime,
                size,
                target,
                chunks,
            });
        }
        Ok(Manifest {
            version: 1,
            kind: ManifestKind::Tree,
            entries,
        })
    }

    fn stream(&mut self, body: impl Read) -> Result<Manifest> {
        let chunks = self.chunk_file(body)?;
        let size = chunks.iter().map(|(_, l)| u64::from(*l)).sum();
        Ok(Manifest {
            version: 1,
            kind: ManifestKind::Stream,
            entries: vec![ManifestEntry {
                path: "stream".into(),
                entry_type: EntryType::File,
                mode: 0o600,
                mtime: crate::now().unix_timestamp(),
                size,
                target: None,
                chunks,
            }],
        })
    }
}

impl Service {
    /// Where packs and manifests go.
    pub(crate) fn blobs(&self) -> Result<&Arc<dyn BlobStore>> {
        self.blobs
            .as_ref()
            .ok_or_else(|| ServiceError::unexpected("this service has no blob store".into()))
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
            .master_key_material(&headlock_core::KmipUid::new(&record.master_key_uid))
            .await?;
        let cluster_id = cluster.id.to_string();
        let key = DataKey::unwrap(
            &record.wrapped,
            &material,
            &WrapContext {
                cluster_id: &cluster_id,
                master_key_uid: &record.master_key_uid,
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
            self.admin_group(actor, group_id).await?
        } else {
            self.readable_group(actor, group_id).await?
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

        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16);
        let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(ChunkId, Vec<u8>)>(workers * 2);
        let (sealed_tx, sealed_rx) = mpsc::channel::<Sealed>(workers * 2);
        let failure = FirstError::default();

        // Pack assembly and upload.
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        // The pack writer runs on one thread of its own (not on whichever runtime worker
        // polls it), so every pack buffer comes from, and returns to, one malloc arena
        // (the peak memory before and after: docs/benchmarks.md, "Backup and restore,
        // beside restic").
        let packer = {
            let handle = tokio::runtime::Handle::current();
            let task = assemble_packs(
                blobs.clone(),
                cluster.id,
                snapshot_id,
                sealed_rx,
                written.clone(),
                failure.clone(),
            );
            tokio::task::spawn_blocking(move || handle.block_on(task))
        };

        // Chunking on this blocking thread, sealing on `workers` threads.
        let cluster_oid = cluster.id;
        let fail = failure.clone();
        let chunking = tokio::task::spawn_blocking(move || {
            let job_rx = Arc::new(Mutex::new(job_rx));
            std::thread::scope(|scope| {
                for _ in 0..workers {
                    let job_rx = job_rx.clone();
                    let sealed_tx = sealed_tx.clone();
                    let cipher = cipher.clone();
                    let fail = fail.clone();
                    scope.spawn(move || {
                        loop {
                            let job = job_rx.lock().expect("job queue poisoned").recv();
                            let Ok((id, plaintext)) = job else { return };
                            match cipher.seal_chunk(cluster_oid, snapshot_id, id, &plaintext) {
                                Ok(record) => {
                                    let sealed = Sealed {
                                        id,
                                        plaintext_length: plaintext.len() as u32,
                                        record,
                                    };
                                    if sealed_tx.blocking_send(sealed).is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    fail.set(ServiceError::unexpected(format!(
                                        "sealing chunk {id}: {e}"
                                    )));
                                    return;
                                }
                            }
                        }
                    });
                }
                drop(sealed_tx);
                let mut chunker = Chunker {
                    id_key: &id_key,
                    known,
                    jobs: job_tx,
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
                    uses,
                    data_size,
                    jobs,
                    ..
                } = chunker;
                drop(jobs); // lets the workers finish
                manifest.map(|m| (m, uses, data_size))
            })
        });

        let chunked = chunking
            .await
            .map_err(|e| ServiceError::unexpected(format!("backup thread failed: {e}")))
            .and_then(|r| r);
        let packed = packer
            .await
            .map_err(|e| ServiceError::unexpected(format!("pack writer failed: {e}")))
            .and_then(|r| r);
        let outcome = match (chunked, packed, failure.take()) {
            (Ok((manifest, uses, data_size)), Ok((locations, stored)), None) => {
                let finished = FinishedUpload {
                    snapshot_id,
                    created,
                    kind,
                    data_key_id,
                    manifest,
                    uses,
                    data_size,
                    locations,
                    stored,
                };
                self.finish_backup(&cluster, &manifest_cipher, finished, &lease)
                    .await
            }
            // The first failure recorded downstream is the cause; the chunker's own
            // error (a client that went away, a malformed archive) otherwise.
            (chunked, packed, first) => Err(first
                .or(packed.err())
                .or(chunked.err())
                .unwrap_or_else(|| ServiceError::unexpected("backup failed".into()))),
        };
        match outcome {
            Ok(record) => {
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
                self.view(&cluster, record).await
            }
            Err(e) => {
                // Nothing refers to what this backup wrote: remove it now (garbage
                // collection would, later).
                let paths = std::mem::take(&mut *written.lock().expect("written list poisoned"));
                for path in paths
                    .iter()
                    .chain([&manifest_path(cluster.id, snapshot_id)])
                {
                    if let Err(err) = blobs.delete(path).await {
                        tracing::warn!(path, error = %err, "cannot remove the object of a failed backup; garbage collection will");
                    }
                }
                tracing::warn!(cluster = %cluster.id, snapshot = %snapshot_id, error = %e, "backup failed");
                Err(e)
            }
        }
    }
}

/// Everything a backup produced before its commit.
struct FinishedUpload {
    snapshot_id: ObjectId,
    created: time::OffsetDateTime,
    kind: SnapshotKind,
    data_key_id: ObjectId,
    manifest: Manifest,
    uses: Vec<ChunkId>,
    data_size: u64,
    locations: Vec<ChunkLocation>,
    stored: u64,
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

impl Service {
    /// Writes the manifest and commits the snapshot (see docs/design.md, step 4).
    async fn finish_backup(
        &self,
        cluster: &Cluster,
        cipher: &ChunkCipher,
        up: FinishedUpload,
        lease: &LeaseGuard,
    ) -> Result<SnapshotRecord> {
        let blobs = self.blobs()?;
        let sealed = cipher
            .seal_manifest(cluster.id, up.snapshot_id, &up.manifest)
            .map_err(|e| ServiceError::unexpected(format!("sealing the manifest: {e}")))?;
        blobs
            .put(&manifest_path(cluster.id, up.snapshot_id), sealed)
            .await
            .map_err(blob_err)?;
        let record = SnapshotRecord {
            id: up.snapshot_id,
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            created: up.created,
            kind: up.kind,
            data_size_bytes: up.data_size,
            stored_size_bytes: up.stored,
            file_size_bytes: up.data_size,
            expires: None,
            do_not_delete: false,
            data_key_id: up.data_key_id,
        };
        let commit = SnapshotCommit {
            snapshot: record.clone(),
            new_chunks: up.locations,
            uses: up.uses,
        };
        // The lease must still be ours at the commit, renewed just now, so that no
        // collection can have judged these packs orphans (see `collect_garbage`).
        if !lease.confirm().await? {
            return Err(ServiceError::unexpected(
                "this backup's lease lapsed (the metadata store was out of reach too long); retry the backup".into(),
            ));
        }
        match self.store.commit_snapshot(&commit).await {
            Ok(()) => Ok(record),
            Err(StoreError::Precondition(why)) => Err(ServiceError::unexpected(format!(
                "a chunk this backup reused was removed meanwhile ({why}); retry the backup"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads, decrypts and checks chunks in manifest order (on a blocking thread).
pub(crate) struct ChunkSource {
    blobs: Arc<dyn BlobStore>,
    handle: tokio::runtime::Handle,
    cipher: Arc<ChunkCipher>,
    id_key: Arc<ChunkIdKey>,
    cluster: ObjectId,
    pub(crate) locations: Arc<HashMap<ChunkId, ChunkLocation>>,
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

/// A chunk read back and checked, or why it could not be.
type ChunkResult = std::result::Result<Vec<u8>, String>;

/// Reads and opens chunks ahead of the writer on a few threads, handing them out in
/// manifest order; at most `window` chunks (of at most 4 MiB) are in flight.
struct Prefetch {
    jobs: std::sync::mpsc::SyncSender<(ChunkId, std::sync::mpsc::SyncSender<ChunkResult>)>,
    upcoming: std::vec::IntoIter<ChunkId>,
    pending: std::collections::VecDeque<std::sync::mpsc::Receiver<ChunkResult>>,
    window: usize,
}

impl Prefetch {
    fn next(&mut self) -> Option<ChunkResult> {
        while self.pending.len() < self.window {
            let Some(id) = self.upcoming.next() else {
                break;
            };
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            if self.jobs.send((id, tx)).is_err() {
                break;
            }
            self.pending.push_back(rx);
        }
        let rx = self.pending.pop_front()?;
        Some(
            rx.recv()
                .unwrap_or_else(|_| Err("a restore reader thread stopped".into())),
        )
    }
}

/// A `Read` over one file's chunks, taken from the shared [`Prefetch`] in order.
struct FileReader<'a> {
    prefetch: &'a mut Prefetch,
    chunks: std::slice::Iter<'a, (ChunkId, u32)>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            let Some((id, len)) = self.chunks.next() else {
                return Ok(0);
            };
            let data = self
                .prefetch
                .next()
                .unwrap_or_else(|| Err(format!("chunk {id} was not read")))
                .map_err(std::io::Error::other)?;
            if data.len() != *len as usize {
                return Err(std::io::Error::other(format!(
                    "chunk {id} has the wrong length"
                )));
            }
            self.current = data;
            self.pos = 0;
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs `write` with a [`Prefetch`] over every chunk of the manifest, in order, fed by
/// reader threads that stop when it returns.
fn with_prefetch<T>(
    source: &ChunkSource,
    manifest: &Manifest,
    write: impl FnOnce(&mut Prefetch) -> T,
) -> T {
    let readers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let order: Vec<ChunkId> = manifest
        .entries
        .iter()
        .flat_map(|e| e.chunks.iter().map(|(id, _)| *id))
        .collect();
    let (jobs, job_rx) = std::sync::mpsc::sync_channel(readers * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    std::thread::scope(|scope| {
        for _ in 0..readers {
            let job_rx = job_rx.clone();
            scope.spawn(move || {
                loop {
                    let job: std::result::Result<
                        (ChunkId, std::sync::mpsc::SyncSender<ChunkResult>),
                        _,
                    > = job_rx.lock().expect("restore queue poisoned").recv();
                    let Ok((id, reply)) = job else { return };
                    let _ = reply.send(source.read(id));
                }
            });
        }
        let mut prefetch = Prefetch {
            jobs,
            upcoming: order.into_iter(),
            pending: std::collections::VecDeque::new(),
            window: readers * 3,
        };
        // Dropping the prefetch (and its job sender) at the end stops the readers.
        write(&mut prefetch)
    })
}

/// Writes a manifest's data as a tar stream (tree) or raw bytes (stream).
fn write_snapshot(
    source: &ChunkSource,
    manifest: &Manifest,
    out: impl std::io::Write,
) -> std::io::Result<()> {
    with_prefetch(source, manifest, |prefetch| match manifest.kind {
        ManifestKind::Stream => {
            let mut out = out;
            for entry in &manifest.entries {
                let mut reader = FileReader {
                    prefetch: &mut *prefetch,
                    chunks: entry.chunks.iter(),
                    current: Vec::new(),
                    pos: 0,
                };
                std::io::copy(&mut reader, &mut out)?;
            }
            out.flush()
        }
        ManifestKind::Tree => {
            let mut builder = tar::Builder::new(out);
            builder.mode(tar::HeaderMode::Complete);
            for entry in &manifest.entries {
                let mut header = tar::Header::new_gnu();
                header.set_mode(entry.mode);
                header.set_mtime(entry.mtime.max(0) as u64);
                match entry.entry_type {
                    EntryType::File => {
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(entry.size);
                        let reader = FileReader {
                            prefetch: &mut *prefetch,
                            chunks: entry.chunks.iter(),
                            current: Vec::new(),
                            pos: 0,
                        };
                        builder.append_data(&mut header, &entry.path, reader)?;
                    }
                    EntryType::Dir => {
                        header.set_entry_type(tar::EntryType::Directory);
                        header.set_size(0);
                        builder.append_data(&mut header, &entry.path, std::io::empty())?;
                    }
                    EntryType::Symlink => {
                        header.set_entry_type(tar::EntryType::Symlink);
                        header.set_size(0);
                        let target = entry.target.as_deref().unwrap_or_default();
                        builder.append_link(&mut header, &entry.path, target)?;
                    }
                }
            }
            builder.into_inner()?.flush()
        }
    })
}

impl Service {
    /// Gives the service a blob store for packs and manifests.
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// One snapshot.
    pub async fn snapshot(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
    ) -> Result<SnapshotView> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let record = self.snapshot_record(&cluster, snapshot_id).await?;
        self.view(&cluster, record).await
    }

    /// A page of a cluster's snapshots, newest first.
    pub async fn list_snapshots(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        page: Page,
    ) -> Result<(Vec<SnapshotView>, u64)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let (records, total) = self.store.list_snapshots(cluster.id, page).await?;
        let master_key_uid = self
            .store
            .current_master_key(cluster.id)
            .await?
            .map(|k| k.kmip_uid);
        let views = records
            .into_iter()
            .map(|record| SnapshotView {
                record,
                cluster: cluster.clone(),
                master_key_uid: master_key_uid.clone(),
            })
            .collect();
        Ok((views, total))
    }

    /// Changes `expires` (Some(None) clears it) and `doNotDelete`.
    pub async fn patch_snapshot(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
        expires: Option<Option<time::OffsetDateTime>>,
        do_not_delete: Option<bool>,
    ) -> Result<SnapshotView> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await?;
        let mut record = self.snapshot_record(&cluster, snapshot_id).await?;
        if let Some(e) = expires {
            record.expires = e;
        }
        if let Some(d) = do_not_delete {
            record.do_not_delete = d;
        }
        self.store.update_snapshot(&record).await?;
        self.view(&cluster, record).await
    }

    /// Deletes a snapshot, then collects the cluster's garbage.
    pub async fn delete_snapshot(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
    ) -> Result<GcReport> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await?;
        let record = self.snapshot_record(&cluster, snapshot_id).await?;
        if record.do_not_delete {
            return Err(Conflict::SnapshotProtected(record.id).into());
        }
        self.store.delete_snapshot(cluster.id, record.id).await?;
        let event = actor.event(
            "SNAPSHOT_DELETED",
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!("snapshot {}", record.id)),
        );
        self.store.append_audit(&event).await?;
        self.collect_garbage(cluster.id).await
    }

    /// Removes the cluster's chunks and packs that no snapshot uses, packs and manifests
    /// that no committed snapshot refers to (left by a crash or a disconnected client).
    /// Waits for the cluster's running backups on this node, and backups wait for it.
    ///
    /// With several nodes, a backup on another node is kept safe by its lease
    /// (`backup:<cluster>:<snapshot>`, held from before its first upload until after its
    /// commit) and by the order of the steps: list the objects, then look for live
    /// backup leases (if there is one, delete nothing this round), then read which packs
    /// are in use. A backup that committed before that read has its packs counted in
    /// use; one that had not committed by then was running at the lease check, which
    /// saw its lease. Chunk records are only removed while no other node backs the
    /// cluster up either (its deduplication may count on them).
    pub async fn collect_garbage(&self, cluster: ObjectId) -> Result<GcReport> {
        let blobs = self.blobs()?.clone();
        let _exclusive = self.snapshot_locks.write(cluster).await;
        let mut report = GcReport::default();
        let backups = format!("backup:{cluster}:");
        if self.leased_elsewhere(&backups).await? {
            report.clusters_skipped = 1;
            return Ok(report);
        }
        // Deletes the chunk records no snapshot uses; the packs they emptied are then
        // not in use, and the listing below finds them with every other orphan.
        self.store.collect_garbage(cluster).await?;
        let packs = blobs
            .list(&format!("packs/{cluster}/"))
            .await
            .map_err(blob_err)?;
        let manifests = blobs
            .list(&format!("manifests/{cluster}/"))
            .await
            .map_err(blob_err)?;
        if self.leased_elsewhere(&backups).await? {
            report.clusters_skipped = 1;
            return Ok(report);
        }
        let in_use: HashSet<ObjectId> = self
            .store
            .packs_in_use(cluster)
            .await?
            .into_iter()
            .collect();
        for blob in packs {
            if object_id_of(&blob.path).is_none_or(|id| !in_use.contains(&id)) {
                blobs.delete(&blob.path).await.map_err(blob_err)?;
                report.packs_deleted += 1;
            }
        }
        // A manifest is kept if its snapshot is committed and it is the one that
        // snapshot is read with: a rewritten one (`<snapshot>.<data key>`) under the
        // snapshot's data key, or the first one while there is no such rewritten one.
        let names: HashSet<String> = manifests.iter().map(|b| b.path.clone()).collect();
        for blob in manifests {
            let committed = match manifest_name(&blob.path) {
                Some((id, key)) => match self.store.snapshot(cluster, id).await? {
                    Some(record) => match key {
                        Some(key) => key == record.data_key_id,
                        None => {
                            !names.contains(&rekeyed_manifest_path(cluster, id, record.data_key_id))
                        }
                    },
                    None => false,
                },
                None => false,
            };
            if !committed {
                blobs.delete(&blob.path).await.map_err(blob_err)?;
                report.manifests_deleted += 1;
            }
        }
        Ok(report)
    }

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

    /// Reads a snapshot back and checks its manifest and every chunk (authentication tag
    /// and content id); names each damaged chunk, its pack and the snapshots that use it.
    pub async fn verify_snapshot(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
    ) -> Result<VerifyReport> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let record = self.snapshot_record(&cluster, snapshot_id).await?;
        let (source, cipher) = self.chunk_source(&cluster, &record).await?;
        let mut report = VerifyReport {
            snapshot_id: record.id,
            manifest_ok: true,
            manifest_error: None,
            chunks_checked: 0,
            bytes_checked: 0,
            damaged: Vec::new(),
        };
        let manifest = match self.open_manifest(&cipher, cluster.id, &record).await {
            Ok(m) => Some(m),
            Err(e) => {
                report.manifest_ok = false;
                report.manifest_error = Some(e.to_string());
                None
            }
        };
        let mut ids: Vec<ChunkId> = source.locations.keys().copied().collect();
        if let Some(m) = &manifest {
            // Every chunk the manifest names must be recorded.
            let mut named = HashSet::new();
            for e in &m.entries {
                for (id, _) in &e.chunks {
                    if named.insert(*id) && !source.locations.contains_key(id) {
                        report.manifest_ok = false;
                        report.manifest_error = Some(format!(
                            "the manifest names chunk {id}, which is not recorded"
                        ));
                    }
                }
            }
        }
        ids.sort_by_key(|id| source.locations.get(id).map(|l| (l.pack_id, l.offset)));
        let source = Arc::new(source);
        let checked = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || {
                let mut bad = Vec::new();
                let mut bytes = 0u64;
                for id in &ids {
                    match source.read(*id) {
                        Ok(data) => bytes += data.len() as u64,
                        Err(reason) => bad.push((*id, reason)),
                    }
                }
                (ids.len() as u64, bytes, bad)
            })
            .await
            .map_err(|e| ServiceError::unexpected(format!("verify thread failed: {e}")))?
        };
        report.chunks_checked = checked.0;
        report.bytes_checked = checked.1;
        if !checked.2.is_empty() {
            let users = self
                .snapshots_using(&cluster, checked.2.iter().map(|(id, _)| *id).collect())
                .await?;
            for (id, reason) in checked.2 {
                report.damaged.push(DamagedChunk {
                    chunk_id: id,
                    pack_id: source.locations[&id].pack_id,
                    reason,
                    snapshot_ids: users.get(&id).cloned().unwrap_or_default(),
                });
            }
        }
        Ok(report)
    }

    /// For each chunk, the snapshots of the cluster that use it.
    async fn snapshots_using(
        &self,
        cluster: &Cluster,
        chunks: HashSet<ChunkId>,
    ) -> Result<HashMap<ChunkId, Vec<ObjectId>>> {
        let mut out: HashMap<ChunkId, Vec<ObjectId>> = HashMap::new();
        for s in all_pages(|p| self.store.list_snapshots(cluster.id, p)).await? {
            for loc in self.store.snapshot_chunks(s.id).await? {
                if chunks.contains(&loc.chunk_id) {
                    out.entry(loc.chunk_id).or_default().push(s.id);
                }
            }
        }
        Ok(out)
    }

    /// Creates a restore job for a snapshot; returns it and its one-time download token
    /// (an HMAC of the job id under the link secret; only its SHA-256 is stored).
    pub async fn create_restore_job(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
    ) -> Result<(RestoreJob, String)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await?;
        let record = self.snapshot_record(&cluster, snapshot_id).await?;
        let id = ObjectId::new();
        let token = self.link_token(id);
        let now = crate::now();
        let job = RestoreJob {
            id,
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            snapshot_id: record.id,
            created: now,
            expires: now + time::Duration::hours(RESTORE_LINK_HOURS),
            token_sha256: ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
                .as_ref()
                .to_vec(),
            max_downloads: 1,
            downloads: 0,
            requested_by: actor.username.clone(),
        };
        self.store.insert_restore_job(&job).await?;
        let event = actor.event(
            "RESTORE_REQUESTED",
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!("restore job {} of snapshot {}", job.id, record.id)),
        );
        self.store.append_audit(&event).await?;
        Ok((job, token))
    }

    /// One restore job, with its download token while the link can still be used (Ops
    /// Manager shows a job's delivery URL until it is used or expires).
    pub async fn restore_job(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        job_id: &str,
    ) -> Result<(RestoreJob, Option<String>)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let id: ObjectId = job_id.parse().map_err(|_| {
            NotFound::RestoreJob(RequestedId::Invalid(crate::groups::truncate(job_id)))
        })?;
        let job = self
            .store
            .restore_job(cluster.id, id)
            .await?
            .ok_or_else(|| NotFound::RestoreJob(id.into()))?;
        let token = self.usable_link(&job);
        Ok((job, token))
    }

    /// A page of a cluster's restore jobs, each with its token while usable.
    pub async fn list_restore_jobs(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        page: Page,
    ) -> Result<(Vec<(RestoreJob, Option<String>)>, u64)> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, false)
            .await?;
        let (jobs, total) = self.store.list_restore_jobs(cluster.id, page).await?;
        let jobs = jobs
            .into_iter()
            .map(|j| {
                let token = self.usable_link(&j);
                (j, token)
            })
            .collect();
        Ok((jobs, total))
    }

    /// The download token of a job: HMAC-SHA256 of its id under the service's link
    /// secret, so that the link can be shown again while it is usable without the token
    /// being stored anywhere.
    fn link_token(&self, job: ObjectId) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.link_secret[..]);
        let mut msg = b"headlock restore link v1 ".to_vec();
        msg.extend_from_slice(&job.bytes());
        hex::encode(ring::hmac::sign(&key, &msg).as_ref())
    }

    fn usable_link(&self, job: &RestoreJob) -> Option<String> {
        (job.downloads < job.max_downloads && crate::now() <= job.expires)
            .then(|| self.link_token(job.id))
    }

    /// Starts the download of a restore job. The token is the credential: it is checked
    /// in constant time against the one derived from the job id and the stored hash, the link must not have expired, and the
    /// download is counted before any byte is sent. Every pack the snapshot needs must
    /// exist, or nothing is sent and the error names the missing pack.
    pub async fn download(
        &self,
        cluster_id: &str,
        job_id: &str,
        token: &str,
    ) -> Result<RestoreDownload> {
        let gone = || NotFound::RestoreLinkGone.into();
        let cluster_id = parse_cluster_id(cluster_id).map_err(|_| gone())?;
        let job_id: ObjectId = job_id.parse().map_err(|_| gone())?;
        let job = self
            .store
            .restore_job(cluster_id, job_id)
            .await?
            .ok_or_else(gone)?;
        let expected = self.link_token(job.id);
        let presented = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        if token.len() > 128
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                token.as_bytes(),
                expected.as_bytes(),
            ))
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                presented.as_ref(),
                job.token_sha256.as_slice(),
            ))
            || crate::now() > job.expires
        {
            return Err(gone());
        }
        let cluster = self
            .store
            .cluster_any_group(cluster_id)
            .await?
            .ok_or_else(gone)?;
        let record = self
            .store
            .snapshot(cluster.id, job.snapshot_id)
            .await?
            .ok_or_else(|| NotFound::Snapshot(job.snapshot_id.into()))?;
        let (source, cipher) = self.chunk_source(&cluster, &record).await?;
        let manifest = self.open_manifest(&cipher, cluster.id, &record).await?;
        let present: HashSet<String> = self
            .blobs()?
            .list(&format!("packs/{}/", cluster.id))
            .await
            .map_err(blob_err)?
            .into_iter()
            .map(|b| b.path)
            .collect();
        for loc in source.locations.values() {
            let path = pack_path(cluster.id, loc.pack_id);
            if !present.contains(&path) {
                return Err(Internal::SnapshotDamaged(format!(
                    "pack {} (holding chunk {}) is missing",
                    loc.pack_id, loc.chunk_id
                ))
                .into());
            }
        }
        if self.store.take_restore_download(job.id).await?.is_none() {
            return Err(gone());
        }
        let (writer, reader) = tokio::io::duplex(1024 * 1024);
        let kind = record.kind;
        let snapshot = record.id;
        let record_size = record.data_size_bytes;
        tokio::task::spawn_blocking(move || {
            let out = std::io::BufWriter::with_capacity(
                1024 * 1024,
                tokio_util::io::SyncIoBridge::new(writer),
            );
            let written = write_snapshot(&source, &manifest, out);
            if written.is_ok() {
                crate::metrics::restore_bytes(record_size);
            }
            if let Err(e) = written {
                // The stream ends early: the client sees a short body, never wrong bytes.
                // Either the client went away (the pipe broke) or stored data failed its
                // checks (the error names the chunk and its pack).
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    tracing::info!(%snapshot, "restore download ended early: the client went away");
                } else {
                    tracing::error!(%snapshot, error = %e, "restore stopped: stored data is damaged or unreadable");
                }
            }
        });
        Ok(RestoreDownload {
            kind,
            content_length: (kind == SnapshotKind::Stream).then_some(record.data_size_bytes),
            reader,
        })
    }
}

impl Service {
    /// Collects the garbage of every cluster: at start, before serving, to remove what
    /// backups interrupted by a crash left, and periodically ([`crate::maintenance`]).
    /// Clusters another node is backing up are skipped (see [`Service::collect_garbage`]).
    pub async fn collect_garbage_everywhere(&self) -> Result<GcReport> {
        let mut total = GcReport::default();
        if self.blobs.is_none() {
            return Ok(total);
        }
        for group in all_pages(|p| self.store.list_groups(p)).await? {
            let clusters = all_pages(|p| self.store.list_clusters(group.id, None, p)).await?;
            for cluster in clusters.iter().filter(|c| !c.is_sharded_whole()) {
                let r = self.collect_garbage(cluster.id).await?;
                total.packs_deleted += r.packs_deleted;
                total.manifests_deleted += r.manifests_deleted;
                total.clusters_skipped += r.clusters_skipped;
            }
        }
        Ok(total)
    }
}
