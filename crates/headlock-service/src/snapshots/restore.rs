//! A restore download: the link checked, every pack present, then the snapshot written
//! out as a tar stream or raw bytes from chunks prefetched in manifest order.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, Mutex};

use headlock_core::ObjectId;
use headlock_core::model::{ChunkId, Cluster, RestoreJob, SnapshotKind, SnapshotRecord};
use headlock_core::snapshot::{EntryType, Manifest, ManifestKind};

use super::read::ChunkSource;
use super::{blob_err, pack_path};
use crate::error::{Internal, NotFound};
use crate::groups::parse_cluster_id;
use crate::{Result, Service};

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

/// What a restore link would deliver, without delivering it (the answer to `HEAD`).
#[derive(Debug, Clone, Copy)]
pub struct RestoreLinkInfo {
    /// Tree (a tar stream) or stream (raw bytes).
    pub kind: SnapshotKind,
    /// Exact length, when known in advance (streams).
    pub content_length: Option<u64>,
}

impl Service {
    /// The job, cluster and snapshot of a restore link whose token is right and which has
    /// not expired: the token is checked in constant time against the one derived from
    /// the job id and against the stored hash. Anything else is `RESTORE_LINK_EXPIRED`.
    async fn open_link(
        &self,
        cluster_id: &str,
        job_id: &str,
        token: &str,
    ) -> Result<(RestoreJob, Cluster, SnapshotRecord)> {
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
        Ok((job, cluster, record))
    }

    /// What the restore link would deliver (`HEAD`): checked as [`Service::download`]
    /// checks it, and refused once used, but not counted as the download.
    pub async fn download_info(
        &self,
        cluster_id: &str,
        job_id: &str,
        token: &str,
    ) -> Result<RestoreLinkInfo> {
        let (job, _, record) = self.open_link(cluster_id, job_id, token).await?;
        if job.downloads >= job.max_downloads {
            return Err(NotFound::RestoreLinkGone.into());
        }
        Ok(RestoreLinkInfo {
            kind: record.kind,
            content_length: (record.kind == SnapshotKind::Stream).then_some(record.data_size_bytes),
        })
    }

    /// Starts the download of a restore job. The token is the credential: it is checked
    /// in constant time against the one derived from the job id and against the stored
    /// hash, the link must not have expired, and the download is counted before any byte
    /// is sent.
    /// Every pack the snapshot needs must exist, or nothing is sent and the error names
    /// the missing pack.
    pub async fn download(
        &self,
        cluster_id: &str,
        job_id: &str,
        token: &str,
    ) -> Result<RestoreDownload> {
        let gone = || NotFound::RestoreLinkGone.into();
        let (job, cluster, record) = self.open_link(cluster_id, job_id, token).await?;
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
