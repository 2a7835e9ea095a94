//! Upload sessions: the incremental backup protocol, where the client chunks and names
//! the data and sends only what the cluster lacks (docs/design.md, "Incremental
//! backups: chunking in the client").
//!
//! A session is a lease, `backup:<cluster>:<upload>` held by `upload:<data key id>`,
//! renewed by each of its requests for [`SESSION_TTL`]: no table, and no lock held
//! between requests. The lease names the data key the session is pinned to; a request
//! made after a compromise recovery added a newer one is refused as stale.
//!
//! ```text
//!  open ─▶ chunkIds? ─▶ chunks (verified, sealed, packed, recorded) ─▶ ... ─▶ commit
//! ```

use std::collections::HashSet;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headlock_core::model::{ChunkId, Cluster, SnapshotKind};
use headlock_core::snapshot::chunker::BoundaryKey;
use headlock_core::snapshot::frames::{MAX_FRAME_ENTRIES, ManifestWriter};
use headlock_core::snapshot::{
    ChunkCipher, ChunkIdKey, FormatError, MAX_CHUNK, MAX_MANIFEST_JSON, ManifestEntry, ManifestKind,
};
use headlock_core::{MetadataStore, ObjectId};
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};
use zeroize::Zeroizing;

use super::backup::{CommitLease, FinishedUpload, ManifestBody, discard};
use super::packs::{ChunkJobs, seal_pipeline};
use super::read::{ManifestStream, frame_chunks};
use super::{SnapshotView, backup_lease, manifest_path, spool_error};
use crate::error::{BadRequest, Conflict, NotFound, RequestedId};
use crate::{Actor, Result, Service, ServiceError};

/// How long a session lives after its last request.
pub const SESSION_TTL: Duration = Duration::from_secs(15 * 60);
/// Most ids one `chunkIds` question may ask about.
pub const MAX_QUERY_IDS: usize = 8192;
/// Most bytes of one chunk upload request (frames included).
pub const MAX_BATCH_BYTES: u64 = 256 * 1024 * 1024;
/// Most chunks in one chunk upload request: what the service keeps per chunk until the
/// request's end (its id, where it went) stays small whatever the chunks' sizes.
pub const MAX_BATCH_CHUNKS: u64 = 16_384;
/// Longest line of a commit's NDJSON manifest.
pub const MAX_MANIFEST_LINE: usize = 16 * 1024 * 1024;
/// Bytes before each chunk of an upload: its id and its length (u32 BE).
const FRAME_HEAD: usize = 32 + 4;
/// The lease holder of a session pinned to a data key.
const HOLDER_PREFIX: &str = "upload:";

/// The holder of an upload session's lease: the data key the session is pinned to.
pub(crate) fn session_holder(data_key_id: ObjectId) -> String {
    format!("{HOLDER_PREFIX}{data_key_id}")
}

/// Whether a lease holder is an upload session (rather than a node doing work).
pub(crate) fn is_session_holder(holder: &str) -> bool {
    holder.starts_with(HOLDER_PREFIX)
}

/// An open upload session, with the keys its client chunks and names data with.
#[derive(Debug)]
pub struct UploadSession {
    /// The session's id, which becomes the snapshot's.
    pub id: ObjectId,
    /// Its cluster.
    pub cluster: Cluster,
    /// When it lapses without another request.
    pub expires: time::OffsetDateTime,
    /// The chunk-id key (BLAKE3 key), derived from the session's data key.
    pub chunk_id_key: Zeroizing<[u8; 32]>,
    /// The chunker's boundary key (FastCDC gear seed, little-endian).
    pub boundary_key: [u8; 8],
}

/// The answer to a `chunkIds` question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownChunks {
    /// How many of the ids asked about (each counted once) the cluster has.
    pub known: u64,
    /// The others, in the order asked, each once.
    pub missing: Vec<ChunkId>,
}

/// What one chunk upload request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkUploadReport {
    /// Chunks in the request.
    pub received: u64,
    /// Chunks sealed and recorded (each distinct chunk once).
    pub stored: u64,
    /// Bytes they take in packs.
    pub stored_bytes: u64,
}

/// A session found by its lease.
struct Session {
    cluster: Cluster,
    id: ObjectId,
    data_key_id: ObjectId,
    lease: String,
    holder: String,
}

/// The first line of a commit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitHeader {
    kind: ManifestKind,
    /// The directory backed up, as the client resolved it (see [`Manifest::source`]).
    #[serde(default)]
    source: Option<String>,
}

/// Most recent snapshots the service opens when it looks for a parent by source path.
pub const PARENT_CANDIDATES: usize = 8;

/// Frames of a parent's manifest read and opened ahead of the one being checked.
const PARENT_FRAMES_AHEAD: usize = 2;

/// A parent snapshot for an upload: its id and its manifest, read a frame at a time
/// ([`ParentManifest::next_batch`]) with the files whose chunks are gone left out.
///
/// A task of its own reads and opens the frames (decryption, decompression, the
/// entries' checks), up to two ahead (`PARENT_FRAMES_AHEAD`), while the store is
/// asked about the chunks of the frame before: the two were a parent answer's time
/// one after the other, and now share the cores. It stops when this is dropped.
pub struct ParentManifest {
    /// The parent snapshot's id.
    pub snapshot: ObjectId,
    source: Option<String>,
    frames: tokio::sync::mpsc::Receiver<Result<Option<Vec<ManifestEntry>>>>,
    /// The last frame (or a failure) was handed out: nothing follows.
    ended: bool,
    store: Arc<dyn MetadataStore>,
    cluster: ObjectId,
}

impl ParentManifest {
    fn new(
        snapshot: ObjectId,
        mut manifest: ManifestStream,
        store: Arc<dyn MetadataStore>,
        cluster: ObjectId,
    ) -> ParentManifest {
        let source = manifest.header().source.clone();
        let (tx, frames) = tokio::sync::mpsc::channel(PARENT_FRAMES_AHEAD);
        tokio::spawn(async move {
            loop {
                let next = manifest.next_batch().await;
                let last = !matches!(next, Ok(Some(_)));
                if tx.send(next).await.is_err() || last {
                    break;
                }
            }
        });
        ParentManifest {
            snapshot,
            source,
            frames,
            ended: false,
            store,
            cluster,
        }
    }

    /// The directory the parent backed up, as its client resolved it.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The next frame's entries, or `None` after the last, without the files one of
    /// whose chunks the cluster no longer has (collected since the parent was written:
    /// the client must read those again). One question to the store per frame, so
    /// the client never has to ask about every chunk of the parent itself.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<ManifestEntry>>> {
        if self.ended {
            return Ok(None);
        }
        let next = self.frames.recv().await.unwrap_or_else(|| {
            Err(ServiceError::unexpected(
                "the parent manifest's reader stopped".into(),
            ))
        });
        let Some(mut entries) = next.inspect_err(|_| self.ended = true)? else {
            self.ended = true;
            return Ok(None);
        };
        let ids = frame_chunks(&entries);
        let stored = self.store.stored_chunks(self.cluster, &ids).await?;
        if stored.len() < ids.len() {
            entries.retain(|e| {
                e.chunks
                    .iter()
                    .all(|(id, _)| stored.binary_search(id).is_ok())
            });
        }
        Ok(Some(entries))
    }
}

impl Service {
    /// The cluster of an upload request, with the rights and state a backup needs. A
    /// refusal for rights is audited (`SNAPSHOT_UPLOAD_REFUSED`).
    async fn upload_cluster(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        what: &str,
    ) -> Result<Cluster> {
        let cluster = match self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                if matches!(e, ServiceError::Denied(_)) {
                    let (group, cluster) = (group_id.parse().ok(), cluster_id.parse().ok());
                    self.audit_upload_refusal(actor, group, cluster, what, &e)
                        .await;
                }
                return Err(e);
            }
        };
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
        Ok(cluster)
    }

    /// Records a refused upload request (`SNAPSHOT_UPLOAD_REFUSED`). The refusal stands
    /// even if the audit trail cannot take it; that failure is logged.
    async fn audit_upload_refusal(
        &self,
        actor: &Actor,
        group: Option<ObjectId>,
        cluster: Option<ObjectId>,
        what: &str,
        refusal: &ServiceError,
    ) {
        let event = actor.event(
            "SNAPSHOT_UPLOAD_REFUSED",
            group,
            cluster,
            "FAILURE",
            Some(&format!("{what}: {refusal}")),
        );
        if let Err(err) = self.store.append_audit(&event).await {
            tracing::error!(error = %err, "cannot record a refusal in the audit trail");
        }
    }

    /// Opens an upload session for one replica set, shard or config server replica
    /// set, and hands out the keys of its newest data key (audited).
    pub async fn open_upload(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<UploadSession> {
        let cluster = self
            .upload_cluster(actor, group_id, cluster_id, "opening an upload session")
            .await?;
        let (data_key_id, data_key) = self.data_key(&cluster).await?;
        let id = ObjectId::new();
        let now = crate::now();
        let holder = session_holder(data_key_id);
        if !self
            .store
            .acquire_lease(&backup_lease(cluster.id, id), &holder, now, SESSION_TTL)
            .await?
        {
            return Err(ServiceError::unexpected(
                "a fresh upload session's lease was taken".into(),
            ));
        }
        let chunk_id_key = Zeroizing::new(*ChunkIdKey::derive(&data_key).expose());
        let boundary_key = BoundaryKey::derive(&data_key).to_bytes();
        drop(data_key);
        let event = actor.event(
            "SNAPSHOT_UPLOAD_STARTED",
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!(
                "upload session {id}: chunk keys of data key {data_key_id} issued"
            )),
        );
        self.store.append_audit(&event).await?;
        Ok(UploadSession {
            id,
            cluster,
            expires: now + SESSION_TTL,
            chunk_id_key,
            boundary_key,
        })
    }

    /// The open session `upload_id` of the cluster, renewed; refused as stale if the
    /// cluster's newest data key is no longer the one it was opened under (unless
    /// `stale_ok`: ending a session). A session that is not an open one of this cluster
    /// is audited: an expired session, or another cluster's session named under this
    /// cluster's path (a client after chunk ids it has no rights to).
    async fn session(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        upload_id: &str,
        what: &str,
        stale_ok: bool,
    ) -> Result<Session> {
        let cluster = self
            .upload_cluster(actor, group_id, cluster_id, what)
            .await?;
        let (group, id) = (cluster.group_id, cluster.id);
        match self.open_session(cluster, upload_id, stale_ok).await {
            Err(e @ ServiceError::NotFound(_)) => {
                self.audit_upload_refusal(actor, Some(group), Some(id), what, &e)
                    .await;
                Err(e)
            }
            other => other,
        }
    }

    /// [`Service::session`] once the cluster is checked.
    async fn open_session(
        &self,
        cluster: Cluster,
        upload_id: &str,
        stale_ok: bool,
    ) -> Result<Session> {
        let id: ObjectId = upload_id.parse().map_err(|_| {
            NotFound::UploadSession(RequestedId::Invalid(crate::groups::truncate(upload_id)))
        })?;
        let gone = || ServiceError::from(NotFound::UploadSession(id.into()));
        let name = backup_lease(cluster.id, id);
        let now = crate::now();
        let lease = self
            .store
            .live_leases(&name, now)
            .await?
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(gone)?;
        let data_key_id: ObjectId = lease
            .holder
            .strip_prefix(HOLDER_PREFIX)
            .and_then(|k| k.parse().ok())
            .ok_or_else(gone)?;
        if !stale_ok && self.newest_data_key(cluster.id).await? != Some(data_key_id) {
            return Err(Conflict::UploadSessionStale(id).into());
        }
        if !self
            .store
            .acquire_lease(&name, &lease.holder, now, SESSION_TTL)
            .await?
        {
            return Err(gone());
        }
        Ok(Session {
            cluster,
            id,
            data_key_id,
            lease: name,
            holder: lease.holder,
        })
    }

    /// The data key new backups of the cluster use (the newest), if it has one.
    async fn newest_data_key(&self, cluster: ObjectId) -> Result<Option<ObjectId>> {
        Ok(self.store.data_keys(cluster).await?.last().map(|k| k.id))
    }

    /// Which of `ids` the session's cluster does not have.
    pub async fn missing_chunks(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        upload_id: &str,
        ids: &[ChunkId],
    ) -> Result<KnownChunks> {
        if ids.len() > MAX_QUERY_IDS {
            return Err(ServiceError::invalid_input(format!(
                "at most {MAX_QUERY_IDS} chunk ids per question; this one has {}",
                ids.len()
            )));
        }
        let s = self
            .session(
                actor,
                group_id,
                cluster_id,
                upload_id,
                "asking for chunk ids",
                false,
            )
            .await?;
        let stored = self.store.stored_chunks(s.cluster.id, ids).await?;
        let mut seen = HashSet::with_capacity(ids.len());
        let mut answer = KnownChunks {
            known: 0,
            missing: Vec::new(),
        };
        for id in ids.iter().filter(|id| seen.insert(**id)) {
            if stored.binary_search(id).is_ok() {
                answer.known += 1;
            } else {
                answer.missing.push(*id);
            }
        }
        Ok(answer)
    }

    /// Receives chunks (frames: id, u32 BE length, plaintext), checks every id against
    /// its plaintext, seals and packs them, and records them once their packs are
    /// durable. One wrong id refuses the whole request (audited as `CHUNK_ID_MISMATCH`)
    /// and keeps nothing of it.
    pub async fn upload_chunks(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        upload_id: &str,
        body: impl AsyncBufRead + Send + Unpin + 'static,
    ) -> Result<ChunkUploadReport> {
        let s = self
            .session(
                actor,
                group_id,
                cluster_id,
                upload_id,
                "uploading chunks",
                false,
            )
            .await?;
        let cluster = &s.cluster;
        let blobs = self.blobs()?.clone();
        // Within this request only: collection on this node waits for it.
        let _shared = self.snapshot_locks.read(cluster.id).await;
        let data_key = self.data_key_by_id(cluster, s.data_key_id).await?;
        let id_key = Arc::new(ChunkIdKey::derive(&data_key));
        let cipher = Arc::new(ChunkCipher::new(&data_key));
        drop(data_key);
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let packed = seal_pipeline(
            blobs.clone(),
            cluster.id,
            s.id,
            cipher,
            written.clone(),
            Some(id_key.clone()),
            move |mut jobs| {
                read_frames(
                    &mut tokio_util::io::SyncIoBridge::new(body),
                    &id_key,
                    &mut jobs,
                )
            },
        )
        .await;
        let result = match packed {
            Ok(p) => match self.store.record_chunks(&p.locations).await {
                Ok(()) => Ok(ChunkUploadReport {
                    received: p.produced,
                    stored: p.locations.len() as u64,
                    stored_bytes: p.stored,
                }),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            let paths = std::mem::take(&mut *written.lock().expect("written list poisoned"));
            discard(&blobs, &paths).await;
            if let ServiceError::BadRequest(BadRequest::ChunkIdMismatch(id)) = e {
                tracing::warn!(cluster = %cluster.id, upload = %s.id, chunk = %id, user = %actor.username, "an uploaded chunk does not hash to its id");
                let event = actor.event(
                    "CHUNK_ID_MISMATCH",
                    Some(cluster.group_id),
                    Some(cluster.id),
                    "FAILURE",
                    Some(&format!(
                        "upload session {}: chunk sent as {id} does not hash to it; request refused",
                        s.id
                    )),
                );
                if let Err(err) = self.store.append_audit(&event).await {
                    tracing::error!(error = %err, "cannot record a chunk id mismatch in the audit trail");
                }
            }
        }
        result
    }

    /// Commits the session as a snapshot: the manifest (NDJSON: a `{"kind"}` line, then
    /// one entry a line) is checked, every chunk it names must be stored for the
    /// cluster with the length it claims, then the manifest is written and the
    /// snapshot committed in one transaction, as a plain backup does.
    pub async fn commit_upload(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        upload_id: &str,
        body: impl AsyncRead + Send + Unpin,
    ) -> Result<SnapshotView> {
        let s = self
            .session(
                actor,
                group_id,
                cluster_id,
                upload_id,
                "committing an upload",
                false,
            )
            .await?;
        // In flight from here on, under a lease of this request's own, taken before the
        // data key is checked again: a compromise recovery's re-encryption job waits
        // for it (`crate::compromise`), so a commit that found the old key still the
        // newest is counted before the job deletes that key, while a session merely
        // left open under the old key (refused as stale from the compromise on) does
        // not hold the job back. Unique per request, so two commits of one session
        // still meet where they did (the snapshot id).
        let Some(_in_flight) = self
            .try_lease(format!("{}:commit:{}", s.lease, ObjectId::new()))
            .await?
        else {
            return Err(ServiceError::unexpected(
                "a fresh lease name was taken".into(),
            ));
        };
        if self.newest_data_key(s.cluster.id).await? != Some(s.data_key_id) {
            return Err(Conflict::UploadSessionStale(s.id).into());
        }
        let cluster = &s.cluster;
        let data_key = self.data_key_by_id(cluster, s.data_key_id).await?;
        let cipher = ChunkCipher::new(&data_key);
        drop(data_key);
        let spool = self.spool_file()?;
        let read = read_manifest(body, spool, &cipher, cluster.id, s.id).await?;
        let data_size = read.data_size;
        let blobs = self.blobs()?.clone();
        let _shared = self.snapshot_locks.read(cluster.id).await;
        // Every chunk named must be stored for the cluster with the length listed: the
        // commit checks it in the same lookup that finds the packs to refer to.
        let finished = FinishedUpload {
            snapshot_id: s.id,
            created: crate::now(),
            kind: match read.kind {
                ManifestKind::Tree => SnapshotKind::Tree,
                ManifestKind::Stream => SnapshotKind::Stream,
            },
            data_key_id: s.data_key_id,
            manifest: ManifestBody::Spooled(read.sealed),
            uses: read.uses,
            lengths: read.lengths,
            data_size,
            locations: Vec::new(),
        };
        let lease = CommitLease::Upload {
            name: &s.lease,
            holder: &s.holder,
        };
        match self.finish_backup(cluster, &cipher, finished, lease).await {
            Ok(record) => {
                if let Err(e) = self.store.release_lease(&s.lease, &s.holder).await {
                    tracing::debug!(lease = %s.lease, error = %e, "cannot end an upload session; it will lapse");
                }
                self.snapshot_created(actor, cluster, record).await
            }
            Err(e) => {
                discard(&blobs, &[manifest_path(cluster.id, s.id)]).await;
                Err(e)
            }
        }
    }

    /// The parent of the session's backup: `snapshot` if given, else the newest
    /// complete tree snapshot (among the [`PARENT_CANDIDATES`] newest) whose manifest
    /// names `source`. Only a snapshot under the session's data key qualifies (its
    /// chunk ids are the ones the session's are keyed like); `None` if none does. The
    /// session's lease keeps collection away from the parent's chunks until it ends.
    pub async fn upload_parent(
        &self,
        actor: &Actor,
        ids: (&str, &str, &str),
        source: Option<&str>,
        snapshot: Option<&str>,
    ) -> Result<Option<ParentManifest>> {
        let (group_id, cluster_id, upload_id) = ids;
        let s = self
            .session(
                actor,
                group_id,
                cluster_id,
                upload_id,
                "reading a parent snapshot",
                false,
            )
            .await?;
        let cluster = &s.cluster;
        let candidates = match snapshot {
            Some(id) => vec![self.snapshot_record(cluster, id).await?],
            None => {
                let page = headlock_core::model::Page {
                    num: 1,
                    size: PARENT_CANDIDATES as u32,
                };
                self.store.list_snapshots(cluster.id, page).await?.0
            }
        };
        let data_key = self.data_key_by_id(cluster, s.data_key_id).await?;
        let cipher = Arc::new(ChunkCipher::new(&data_key));
        drop(data_key);
        for record in candidates {
            if record.data_key_id != s.data_key_id || record.kind != SnapshotKind::Tree {
                continue;
            }
            // Only the header frame is read to compare sources (v2).
            let manifest = self
                .manifest_stream(cipher.clone(), cluster.id, &record)
                .await?;
            if snapshot.is_some()
                || (source.is_some() && manifest.header().source.as_deref() == source)
            {
                return Ok(Some(ParentManifest::new(
                    record.id,
                    manifest,
                    self.store.clone(),
                    cluster.id,
                )));
            }
        }
        Ok(None)
    }

    /// Ends a session without a snapshot; what it stored is left to garbage collection.
    pub async fn abandon_upload(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        upload_id: &str,
    ) -> Result<()> {
        let s = self
            .session(
                actor,
                group_id,
                cluster_id,
                upload_id,
                "ending an upload",
                true,
            )
            .await?;
        self.store.release_lease(&s.lease, &s.holder).await?;
        Ok(())
    }
}

/// Reads chunk frames to the end of `reader`, checking each id and sending each
/// distinct chunk to the sealing workers. Returns how many frames there were.
fn read_frames(
    reader: &mut impl BufRead,
    id_key: &ChunkIdKey,
    jobs: &mut ChunkJobs,
) -> Result<u64> {
    let interrupted =
        |e: std::io::Error| ServiceError::from(BadRequest::UploadInterrupted(e.to_string()));
    let mut seen = HashSet::new();
    let (mut total, mut received) = (0u64, 0u64);
    loop {
        let mut head = [0u8; FRAME_HEAD];
        // A clean end is an end before a frame's first byte.
        let first = loop {
            match reader.read(&mut head[..1]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(interrupted(e)),
            }
        };
        if first == 0 {
            return Ok(received);
        }
        reader.read_exact(&mut head[1..]).map_err(interrupted)?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&head[..32]);
        let id = ChunkId(id);
        let len = u32::from_be_bytes([head[32], head[33], head[34], head[35]]);
        if received >= MAX_BATCH_CHUNKS {
            return Err(ServiceError::invalid_input(format!(
                "a chunk upload holds at most {MAX_BATCH_CHUNKS} chunks"
            )));
        }
        if len == 0 || len > MAX_CHUNK {
            return Err(ServiceError::invalid_input(format!(
                "chunk {id} has length {len} (1 to {MAX_CHUNK})"
            )));
        }
        total += (FRAME_HEAD as u64) + u64::from(len);
        if total > MAX_BATCH_BYTES {
            return Err(ServiceError::invalid_input(format!(
                "a chunk upload holds at most {MAX_BATCH_BYTES} bytes"
            )));
        }
        let data = read_exact_vec(reader, len as usize).map_err(interrupted)?;
        received += 1;
        if seen.insert(id) {
            // The sealing workers check the id (in parallel, before sealing).
            if jobs.send((id, data)).is_err() {
                // The workers stopped: the pipeline failed downstream; its error wins.
                return Err(ServiceError::unexpected("upload pipeline stopped".into()));
            }
        } else if !id_key.matches(&data, &id) {
            // A repeat is not sealed again, but it must hash to its id all the same.
            return Err(BadRequest::ChunkIdMismatch(id.to_string()).into());
        }
    }
}

/// The next `len` bytes of `reader`, copied from its own buffer into a new `Vec` (a
/// `read_exact` into `vec![0; len]` would write every byte twice: zeros, then data).
fn read_exact_vec(reader: &mut impl BufRead, len: usize) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let available = match reader.fill_buf() {
            Ok([]) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let n = available.len().min(len - data.len());
        data.extend_from_slice(&available[..n]);
        reader.consume(n);
    }
    Ok(data)
}

/// A commit's manifest, sealed as it was read, and the chunks it names.
struct ReadManifest {
    kind: ManifestKind,
    /// The sealed manifest, in an unlinked spool file.
    sealed: std::fs::File,
    data_size: u64,
    /// Each distinct chunk once, sorted by id, and its length: two flat arrays
    /// ([`ChunkUses`]), 36 bytes a chunk.
    uses: Vec<ChunkId>,
    lengths: Vec<u32>,
}

/// The chunks a manifest names, gathered as its entries arrive: (id, length) pairs,
/// sorted and deduplicated whenever they have doubled since the last time, so they
/// stay within twice the distinct chunks however often a chunk repeats (no hash map:
/// 36 bytes a pair).
#[derive(Default)]
struct ChunkUses {
    pairs: Vec<(ChunkId, u32)>,
    /// Pairs after the last compaction.
    compacted: usize,
}

impl ChunkUses {
    fn push(&mut self, id: ChunkId, len: u32) -> Result<()> {
        self.pairs.push((id, len));
        if self.pairs.len() >= 2 * self.compacted.max(MAX_FRAME_ENTRIES) {
            self.compact()?;
        }
        Ok(())
    }

    /// Sorts and deduplicates; a chunk listed with two lengths refuses the manifest.
    fn compact(&mut self) -> Result<()> {
        self.pairs.sort_unstable();
        self.pairs.dedup();
        if let Some(w) = self.pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ServiceError::invalid_input(format!(
                "chunk {} is listed with lengths {} and {}",
                w[0].0, w[0].1, w[1].1
            )));
        }
        self.compacted = self.pairs.len();
        Ok(())
    }

    /// The distinct chunks, sorted, and their lengths.
    fn finish(mut self) -> Result<(Vec<ChunkId>, Vec<u32>)> {
        self.compact()?;
        // Up to half the pairs' room is slack (they doubled since the last compaction);
        // it goes before the two arrays are made beside them.
        self.pairs.shrink_to_fit();
        let ids = self.pairs.iter().map(|p| p.0).collect();
        let lengths = self.pairs.iter().map(|p| p.1).collect();
        Ok((ids, lengths))
    }
}

/// Reads a commit's NDJSON manifest one bounded line at a time, checking each entry
/// and sealing it into v2 frames written to `spool` as it comes: neither the entries
/// nor the sealed manifest are ever held whole.
async fn read_manifest(
    body: impl AsyncRead + Unpin,
    spool: std::fs::File,
    cipher: &ChunkCipher,
    cluster: ObjectId,
    snapshot: ObjectId,
) -> Result<ReadManifest> {
    let mut reader = tokio::io::BufReader::new(body);
    let mut line = Vec::new();
    let mut number = 0u64;
    type Spool = std::io::BufWriter<std::fs::File>;
    let mut spool = Some(spool);
    let mut writer: Option<(ManifestKind, ManifestWriter<'_, Spool>)> = None;
    let mut uses = ChunkUses::default();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_MANIFEST_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| BadRequest::UploadInterrupted(e.to_string()))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.len() > MAX_MANIFEST_LINE {
            return Err(ServiceError::invalid_input(format!(
                "manifest line {number} is longer than {MAX_MANIFEST_LINE} bytes"
            )));
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let bad = |e: serde_json::Error| {
            ServiceError::invalid_input(format!("manifest line {number}: {e}"))
        };
        let invalid = |e: FormatError| match e {
            FormatError::Write(kind, why) => spool_error(kind, &why),
            e => ServiceError::invalid_input(format!("the manifest: {e}")),
        };
        match &mut writer {
            None => {
                let h: CommitHeader = serde_json::from_slice(text).map_err(bad)?;
                let out = std::io::BufWriter::with_capacity(
                    256 * 1024,
                    spool.take().expect("one header"),
                );
                let w = ManifestWriter::to(out, cipher, cluster, snapshot, h.kind, h.source)
                    .map_err(invalid)?;
                writer = Some((h.kind, w));
            }
            Some((_, w)) => {
                let entry: ManifestEntry = serde_json::from_slice(text).map_err(bad)?;
                w.push(&entry).map_err(invalid)?;
                if w.sealed_len() > MAX_MANIFEST_JSON {
                    return Err(ServiceError::invalid_input(format!(
                        "the sealed manifest is longer than {MAX_MANIFEST_JSON} bytes"
                    )));
                }
                for (id, len) in &entry.chunks {
                    uses.push(*id, *len)?;
                }
            }
        }
    }
    let (kind, writer) = writer.ok_or_else(|| {
        ServiceError::invalid_input(
            "the manifest is empty (its first line is {\"kind\": ...})".into(),
        )
    })?;
    let data_size = writer.data_size();
    // The writer (and its table of every path) goes before the chunk list is turned
    // into two arrays: both grow with the snapshot, and the peak is their sum.
    let sealed = writer
        .finish()
        .map_err(|e| match e {
            FormatError::Write(kind, why) => spool_error(kind, &why),
            e => ServiceError::invalid_input(format!("the manifest: {e}")),
        })?
        .into_inner()
        .map_err(|e| spool_error(e.error().kind(), &e.error().to_string()))?;
    let (uses, lengths) = uses.finish()?;
    Ok(ReadManifest {
        kind,
        sealed,
        data_size,
        uses,
        lengths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_chunk_across_buffer_refills_and_refuses_a_cut_one() {
        let data: Vec<u8> = (0..100u8).collect();
        // A 7-byte buffer: the 40 bytes take several refills, and the rest stays.
        let mut reader = std::io::BufReader::with_capacity(7, &data[..]);
        assert_eq!(read_exact_vec(&mut reader, 40).unwrap(), &data[..40]);
        assert_eq!(read_exact_vec(&mut reader, 0).unwrap(), Vec::<u8>::new());
        assert_eq!(read_exact_vec(&mut reader, 10).unwrap(), &data[40..50]);
        // 50 left: asking for 51 is a stream cut inside the chunk.
        let err = read_exact_vec(&mut reader, 51).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
