//! A restore download: the link checked, every pack present, then the snapshot written
//! out as a tar stream or raw bytes from chunks prefetched in manifest order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use headlock_core::model::{
    ChunkId, ChunkLocation, Cluster, RestoreJob, SnapshotKind, SnapshotRecord,
};
use headlock_core::snapshot::{EntryType, ManifestEntry, ManifestKind};
use headlock_core::store::StoreError;
use headlock_core::{MetadataStore, ObjectId};
use tokio_util::bytes::Bytes;

use super::read::{ChunkSource, ManifestStream, extends_run, frame_chunks, locations_by_id};
use super::{blob_err, pack_path, worker_threads};
use crate::error::{Internal, NotFound};
use crate::groups::parse_cluster_id;
use crate::{Result, Service};

/// A restore download: the snapshot's data as a stream.
pub struct RestoreDownload {
    /// Tree (a tar stream) or stream (raw bytes).
    pub kind: SnapshotKind,
    /// Exact length, when known in advance (streams).
    pub content_length: Option<u64>,
    /// The bytes, in frames as they are produced. Ends early (an error is logged naming
    /// the chunk and pack) if stored data turns out to be damaged mid-way: never wrong
    /// bytes.
    pub frames: tokio::sync::mpsc::Receiver<Bytes>,
}

/// Frames whose chunks the check before a download asks the store about at once.
const CHECK_LOOKUPS: usize = 3;

/// The check's questions in flight, oldest first: the first chunk of each frame that
/// is not stored, if one is not. Those still in flight when the check stops (it found
/// a problem, or the client went away) are aborted.
#[derive(Default)]
struct Lookups(VecDeque<tokio::task::JoinHandle<std::result::Result<Option<ChunkId>, StoreError>>>);

impl Drop for Lookups {
    fn drop(&mut self) {
        for lookup in &self.0 {
            lookup.abort();
        }
    }
}

/// A chunk read back and checked, or why it could not be.
type ChunkResult = std::result::Result<Vec<u8>, String>;

/// A chunk to read: its location, or its id if it has none.
type Located = std::result::Result<ChunkLocation, ChunkId>;

/// Most bytes of one read of adjacent chunks (a single larger chunk is read alone).
const RUN_BYTES: u64 = 1024 * 1024;
/// Most chunks of one read.
const RUN_CHUNKS: usize = 256;

/// A read job: adjacent chunks of one pack (or one chunk without a location), and
/// where their results go, in order.
type Job = (Vec<Located>, std::sync::mpsc::SyncSender<Vec<ChunkResult>>);

/// Reads and opens chunks ahead of the writer on a few threads, handing them out in
/// manifest order. Chunks that lie next to each other in one pack (a tree of small
/// files, written in order) are read together, one range of at most [`RUN_BYTES`] and
/// [`RUN_CHUNKS`]: one read of the blob store instead of one per chunk. At most
/// `window` reads are in flight. The order is fed a manifest frame at a time
/// ([`Prefetch::queue`]).
struct Prefetch {
    jobs: std::sync::mpsc::SyncSender<Job>,
    upcoming: VecDeque<Located>,
    pending: VecDeque<std::sync::mpsc::Receiver<Vec<ChunkResult>>>,
    /// Results of the oldest read, not handed out yet.
    ready: VecDeque<ChunkResult>,
    window: usize,
}

impl Prefetch {
    /// Adds the chunks of `entries` to the order, each with its location (looked up
    /// for these entries only).
    fn queue(&mut self, entries: &[ManifestEntry], locations: &HashMap<ChunkId, ChunkLocation>) {
        self.upcoming.extend(
            entries
                .iter()
                .flat_map(|e| e.chunks.iter())
                .map(|(id, _)| locations.get(id).cloned().ok_or(*id)),
        );
    }

    /// The next chunks to read together: the first upcoming one, and those after it
    /// that follow it directly in the same pack.
    fn next_run(&mut self) -> Vec<Located> {
        let Some(first) = self.upcoming.pop_front() else {
            return Vec::new();
        };
        let Ok(head) = first else {
            // Without a location: alone, to fail on its own.
            return vec![first];
        };
        let mut run = vec![head];
        while run.len() < RUN_CHUNKS {
            match self.upcoming.front() {
                // Adjacent only: a restore reads nothing it does not hand out.
                Some(Ok(next))
                    if extends_run((&run[0], &run[run.len() - 1]), next, 0, RUN_BYTES) =>
                {
                    run.extend(self.upcoming.pop_front().and_then(Result::ok));
                }
                _ => break,
            }
        }
        run.into_iter().map(Ok).collect()
    }

    fn next(&mut self) -> Option<ChunkResult> {
        while self.pending.len() < self.window {
            let run = self.next_run();
            if run.is_empty() {
                break;
            }
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            if self.jobs.send((run, tx)).is_err() {
                break;
            }
            self.pending.push_back(rx);
        }
        if let Some(ready) = self.ready.pop_front() {
            return Some(ready);
        }
        let rx = self.pending.pop_front()?;
        match rx.recv() {
            Ok(results) => self.ready.extend(results),
            Err(_) => return Some(Err("a restore reader thread stopped".into())),
        }
        self.ready.pop_front()
    }
}

/// The next chunk of the order, which must be `id` of `len` bytes.
fn next_chunk(prefetch: &mut Prefetch, (id, len): &(ChunkId, u32)) -> std::io::Result<Vec<u8>> {
    let data = prefetch
        .next()
        .unwrap_or_else(|| Err(format!("chunk {id} was not read")))
        .map_err(std::io::Error::other)?;
    if data.len() != *len as usize {
        return Err(std::io::Error::other(format!(
            "chunk {id} has the wrong length"
        )));
    }
    Ok(data)
}

/// Frames of a download this long or longer go to the connection as they are (a
/// chunk's plaintext, handed over without a copy); shorter writes (tar headers, small
/// chunks) are gathered into frames of this length.
const FRAME_BYTES: usize = 256 * 1024;
/// Frames waiting for the connection, at most (each at most
/// [`MAX_CHUNK`](headlock_core::snapshot::MAX_CHUNK) bytes).
const FRAMES_QUEUED: usize = 4;

/// Where a download's bytes go: frames handed to the connection over a bounded channel.
/// Until December 2026 the bytes went through a tar builder's copy loop, a `BufWriter`,
/// an in-memory pipe and a reader stream: four copies of every byte in this process
/// (docs/benchmarks.md); now a large chunk is not copied at all, and anything else once.
struct Frames {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    gathering: Vec<u8>,
}

impl Frames {
    fn send(&mut self, frame: Bytes) -> std::io::Result<()> {
        // The receiver is gone: the client went away.
        self.tx
            .blocking_send(frame)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    fn send_gathered(&mut self) -> std::io::Result<()> {
        if self.gathering.is_empty() {
            return Ok(());
        }
        let frame = std::mem::replace(&mut self.gathering, Vec::with_capacity(FRAME_BYTES));
        self.send(Bytes::from(frame))
    }

    /// Writes a chunk that is ours to give away: a large one goes as a frame of its own.
    fn write_owned(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        if data.len() < FRAME_BYTES {
            return std::io::Write::write_all(self, &data);
        }
        self.send_gathered()?;
        self.send(Bytes::from(data))
    }
}

impl std::io::Write for Frames {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.gathering.extend_from_slice(buf);
        if self.gathering.len() >= FRAME_BYTES {
            self.send_gathered()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_gathered()
    }
}

/// The size of `entry`, which its chunks must add up to (checked before anything of it
/// is written, so that a tar header never announces other than what follows).
fn checked_size(entry: &ManifestEntry) -> std::io::Result<u64> {
    let held: u64 = entry.chunks.iter().map(|(_, len)| u64::from(*len)).sum();
    if held != entry.size {
        return Err(std::io::Error::other(format!(
            "{}: its chunks hold {held} bytes, its size is {}",
            entry.path, entry.size
        )));
    }
    Ok(held)
}

/// Writes the chunks of `entry` in order.
fn write_chunks(
    prefetch: &mut Prefetch,
    entry: &ManifestEntry,
    out: &mut Frames,
) -> std::io::Result<()> {
    for chunk in &entry.chunks {
        out.write_owned(next_chunk(prefetch, chunk)?)?;
    }
    Ok(())
}

/// Runs `write` with a [`Prefetch`] (empty: `write` queues the order) fed by reader
/// threads that stop when it returns.
fn with_prefetch<T>(source: &ChunkSource, write: impl FnOnce(&mut Prefetch) -> T) -> T {
    let readers = worker_threads(8);
    let (jobs, job_rx) = std::sync::mpsc::sync_channel(readers * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    std::thread::scope(|scope| {
        for _ in 0..readers {
            let job_rx = job_rx.clone();
            scope.spawn(move || {
                loop {
                    let job: std::result::Result<Job, _> =
                        job_rx.lock().expect("restore queue poisoned").recv();
                    let Ok((run, reply)) = job else { return };
                    let _ = reply.send(match run.as_slice() {
                        [Err(id)] => {
                            vec![Err(format!("chunk {id} is not recorded for the cluster"))]
                        }
                        _ => {
                            let run: Vec<ChunkLocation> =
                                run.into_iter().filter_map(|l| l.ok()).collect();
                            source.read_run(&run)
                        }
                    });
                }
            });
        }
        let mut prefetch = Prefetch {
            jobs,
            upcoming: VecDeque::new(),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            window: readers * 3,
        };
        // Dropping the prefetch (and its job sender) at the end stops the readers.
        write(&mut prefetch)
    })
}

/// Writes one manifest entry: raw bytes (stream) or a tar member (tree).
fn write_entry(
    prefetch: &mut Prefetch,
    entry: &ManifestEntry,
    out: &mut Output,
) -> std::io::Result<()> {
    let builder = match out {
        Output::Raw(w) => {
            checked_size(entry)?;
            return write_chunks(prefetch, entry, w);
        }
        Output::Tar(b) => b,
    };
    let mut header = tar::Header::new_gnu();
    header.set_mode(entry.mode);
    header.set_mtime(entry.mtime.max(0) as u64);
    match entry.entry_type {
        EntryType::File => {
            let size = checked_size(entry)?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            // The header alone, long names included: `append_data` writes it, then
            // copies and pads the data it is given, here none. The data follows as
            // the chunks come, without the builder's copy loop, then its padding.
            builder.append_data(&mut header, &entry.path, std::io::empty())?;
            let out = builder.get_mut();
            write_chunks(prefetch, entry, out)?;
            let pad = (512 - size % 512) % 512;
            std::io::Write::write_all(out, &[0u8; 512][..pad as usize])
        }
        EntryType::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, &entry.path, std::io::empty())
        }
        EntryType::Symlink => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = entry.target.as_deref().unwrap_or_default();
            builder.append_link(&mut header, &entry.path, target)
        }
    }
}

/// Where a restore writes: raw bytes (a stream) or a tar stream (a tree).
enum Output {
    Raw(Frames),
    Tar(tar::Builder<Frames>),
}

/// A manifest frame and the locations of its chunks, `None` after the last frame, or
/// why the manifest or the store failed.
type LocatedFrame = std::io::Result<Option<(Vec<ManifestEntry>, HashMap<ChunkId, ChunkLocation>)>>;

/// Frames located and queued for the readers, at most, the next one to write included:
/// while one is written, one more is queued (and another may wait in the channel).
const FRAMES_AHEAD: usize = 2;

/// Reads the manifest a frame at a time and looks up each frame's chunk locations,
/// ahead of the writer ([`write_snapshot`]), which would otherwise wait for each
/// lookup between two frames while the connection and the client idle. Ends after
/// sending the end (`Ok(None)`) or an error, or when the writer is gone.
async fn locate_frames(
    mut manifest: ManifestStream,
    store: Arc<dyn MetadataStore>,
    cluster: ObjectId,
    located: tokio::sync::mpsc::Sender<LocatedFrame>,
) {
    loop {
        let frame = match manifest.next_batch().await {
            Ok(Some(entries)) => {
                let ids = frame_chunks(&entries);
                locations_by_id(store.as_ref(), cluster, &ids)
                    .await
                    .map(|locations| Some((entries, locations)))
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        let last = !matches!(frame, Ok(Some(_)));
        if located.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// Writes a manifest's data as a tar stream (tree) or raw bytes (stream), its frames
/// coming located from [`locate_frames`] (never the whole manifest): each frame's chunks
/// are queued for the readers as soon as it arrives, at most [`FRAMES_AHEAD`] at a
/// time (the one being written taken out of them).
fn write_snapshot(
    source: &ChunkSource,
    kind: ManifestKind,
    mut located: tokio::sync::mpsc::Receiver<LocatedFrame>,
    out: Frames,
) -> std::io::Result<()> {
    let mut out = match kind {
        ManifestKind::Stream => Output::Raw(out),
        ManifestKind::Tree => {
            let mut builder = tar::Builder::new(out);
            builder.mode(tar::HeaderMode::Complete);
            Output::Tar(builder)
        }
    };
    with_prefetch(source, |prefetch| {
        let mut ahead: VecDeque<Vec<ManifestEntry>> = VecDeque::new();
        let mut ended = false;
        loop {
            // Every frame already located is queued; the writer waits only when it
            // has no frame left to write.
            while !ended && ahead.len() < FRAMES_AHEAD {
                let frame = if ahead.is_empty() {
                    located.blocking_recv()
                } else {
                    match located.try_recv() {
                        Ok(frame) => Some(frame),
                        Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
                    }
                };
                // Gone without saying the manifest ended: never a short stream that
                // looks whole.
                let frame = frame
                    .unwrap_or_else(|| Err(std::io::Error::other("the manifest reader stopped")))?;
                match frame {
                    Some((entries, locations)) => {
                        prefetch.queue(&entries, &locations);
                        ahead.push_back(entries);
                    }
                    None => ended = true,
                }
            }
            let Some(entries) = ahead.pop_front() else {
                break;
            };
            for entry in &entries {
                write_entry(prefetch, entry, &mut out)?;
            }
        }
        match out {
            Output::Raw(mut w) => std::io::Write::flush(&mut w),
            Output::Tar(b) => std::io::Write::flush(&mut b.into_inner()?),
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
        let (source, cipher) = self.chunk_reader(&cluster, &record).await?;
        // Every pack the snapshot uses must exist: then every chunk recorded in them is
        // there (a pack's records go only with the pack).
        let present: HashSet<String> = self
            .blobs()?
            .list(&format!("packs/{}/", cluster.id))
            .await
            .map_err(blob_err)?
            .into_iter()
            .map(|b| b.path)
            .collect();
        for pack in self.store.snapshot_packs(record.id).await? {
            if !present.contains(&pack_path(cluster.id, pack)) {
                return Err(Internal::SnapshotDamaged(format!(
                    "pack {pack} of snapshot {} is missing",
                    record.id
                ))
                .into());
            }
        }
        drop(present);
        // A first pass over every frame (dropped as read): a damaged or truncated
        // manifest, or a chunk that is not recorded, refuses the download before any
        // byte is sent. Asked a frame at a time, of the chunk index only, with up to
        // `CHECK_LOOKUPS` frames' questions in flight while the next frames are opened
        // (nothing else runs before the first byte; the store answers on several
        // connections). The oldest answer is taken first, so the chunk reported is the
        // first missing one in the manifest's order.
        let mut check = self
            .manifest_stream(cipher.clone(), cluster.id, &record)
            .await?;
        let mut lookups = Lookups::default();
        let (mut more, mut unreadable) = (true, None);
        while more || !lookups.0.is_empty() {
            if more && lookups.0.len() < CHECK_LOOKUPS {
                match check.next_batch().await {
                    Ok(Some(entries)) => {
                        let ids = frame_chunks(&entries);
                        let (store, cluster_id) = (self.store.clone(), cluster.id);
                        lookups.0.push_back(tokio::spawn(async move {
                            let stored = store.stored_chunks(cluster_id, &ids).await?;
                            Ok(ids.into_iter().find(|id| stored.binary_search(id).is_err()))
                        }));
                        continue;
                    }
                    Ok(None) => more = false,
                    // Reported after the earlier frames' answers, which come first.
                    Err(e) => (more, unreadable) = (false, Some(e)),
                }
            }
            let Some(oldest) = lookups.0.pop_front() else {
                break;
            };
            let answer = oldest.await.map_err(|e| {
                crate::ServiceError::unexpected(format!("a chunk lookup failed: {e}"))
            })?;
            if let Some(lost) = answer? {
                return Err(Internal::SnapshotDamaged(format!(
                    "chunk {lost} of snapshot {} is not recorded",
                    record.id
                ))
                .into());
            }
        }
        if let Some(e) = unreadable {
            return Err(e);
        }
        let manifest = self.manifest_stream(cipher, cluster.id, &record).await?;
        if self.store.take_restore_download(job.id).await?.is_none() {
            return Err(gone());
        }
        let (tx, frames) = tokio::sync::mpsc::channel(FRAMES_QUEUED);
        let kind = record.kind;
        let snapshot = record.id;
        let record_size = record.data_size_bytes;
        let manifest_kind = manifest.header().kind;
        let (located_tx, located) = tokio::sync::mpsc::channel(1);
        tokio::spawn(locate_frames(
            manifest,
            self.store.clone(),
            cluster.id,
            located_tx,
        ));
        tokio::task::spawn_blocking(move || {
            let out = Frames {
                tx,
                gathering: Vec::with_capacity(FRAME_BYTES),
            };
            let written = write_snapshot(&source, manifest_kind, located, out);
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
            frames,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pack: ObjectId, offset: u64, length: u32) -> Located {
        Ok(ChunkLocation {
            cluster_id: pack,
            chunk_id: ChunkId([offset as u8; 32]),
            pack_id: pack,
            offset,
            length,
            plaintext_length: length,
            stored_by: pack,
        })
    }

    fn offsets(run: &[Located]) -> Vec<u64> {
        run.iter()
            .map(|l| l.as_ref().map_or(u64::MAX, |l| l.offset))
            .collect()
    }

    #[test]
    fn refuses_a_file_whose_chunks_do_not_add_up_to_its_size() {
        let mut entry = ManifestEntry {
            path: "a".into(),
            entry_type: EntryType::File,
            mode: 0o644,
            mtime: 0,
            size: 30,
            target: None,
            chunks: vec![(ChunkId([1; 32]), 10), (ChunkId([2; 32]), 20)],
            stamp: None,
        };
        assert_eq!(checked_size(&entry).unwrap(), 30);
        entry.size = 31;
        let e = checked_size(&entry).unwrap_err().to_string();
        assert_eq!(e, "a: its chunks hold 30 bytes, its size is 31");
    }

    #[test]
    fn reads_adjacent_chunks_of_one_pack_together_and_nothing_else() {
        let (a, b) = (ObjectId::new(), ObjectId::new());
        let (jobs, _rx) = std::sync::mpsc::sync_channel(1);
        let mut p = Prefetch {
            jobs,
            upcoming: VecDeque::new(),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            window: 1,
        };
        let big = RUN_BYTES as u32 - 100;
        p.upcoming.extend([
            at(a, 8, 100),
            at(a, 108, 50),
            // A gap in the pack: a new read.
            at(a, 200, 10),
            // Another pack.
            at(b, 210, 10),
            // No location: alone.
            Err(ChunkId([9; 32])),
            at(b, 220, 10),
            at(b, 230, big),
            // Past RUN_BYTES from the run's start: a new read.
            at(b, 230 + u64::from(big), 200),
        ]);
        assert_eq!(offsets(&p.next_run()), [8, 108]);
        assert_eq!(offsets(&p.next_run()), [200]);
        assert_eq!(offsets(&p.next_run()), [210]);
        assert_eq!(offsets(&p.next_run()), [u64::MAX]);
        assert_eq!(offsets(&p.next_run()), [220, 230]);
        assert_eq!(offsets(&p.next_run()), [230 + u64::from(big)]);
        assert!(p.next_run().is_empty());

        p.upcoming
            .extend((0..RUN_CHUNKS as u64 + 5).map(|i| at(a, i * 10, 10)));
        assert_eq!(p.next_run().len(), RUN_CHUNKS);
        assert_eq!(p.next_run().len(), 5);
    }
}
