//! Verification: a snapshot read back, its manifest and every chunk it uses checked, a
//! manifest frame at a time, each damaged chunk named with its pack and the snapshots
//! that use it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use headlock_core::ObjectId;
use headlock_core::model::{ChunkId, ChunkLocation, Cluster, SnapshotRecord};

use super::read::{ChunkSource, frame_chunks, pack_runs};
use super::{all_pages, worker_threads};
use crate::{Actor, Result, Service, ServiceError};

/// Most bytes skipped between two chunks read with one range.
const VERIFY_GAP: u64 = 256 * 1024;
/// Most bytes of one range (a larger chunk is read alone).
const VERIFY_SPAN: u64 = 8 * 1024 * 1024;
/// Most threads checking chunks of one verification (each holds a range of at most
/// [`VERIFY_SPAN`] bytes and its chunks' plaintext).
const VERIFY_THREADS: usize = 4;

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
    /// Chunks read and checked (the manifest is checked a frame of up to 4,096 entries
    /// at a time: a chunk that several frames name is checked, and counted, in each).
    pub chunks_checked: u64,
    /// Plaintext bytes checked (counted as `chunks_checked`).
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

impl Service {
    /// Reads a snapshot back and checks its manifest and every chunk (authentication tag
    /// and content id); names each damaged chunk, its pack and the snapshots that use it.
    ///
    /// It decrypts the whole snapshot, as a restore does, so it needs the rights a
    /// restore needs (backup rights in the group: `GROUP_OWNER`, `GROUP_BACKUP_ADMIN`,
    /// `GLOBAL_OWNER`); read-only users get `USER_UNAUTHORIZED`.
    pub async fn verify_snapshot(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        snapshot_id: &str,
    ) -> Result<VerifyReport> {
        let cluster = self
            .snapshot_cluster(actor, group_id, cluster_id, true)
            .await?;
        let record = self.snapshot_record(&cluster, snapshot_id).await?;
        let (source, cipher) = self.chunk_reader(&cluster, &record).await?;
        let mut report = VerifyReport {
            snapshot_id: record.id,
            manifest_ok: true,
            manifest_error: None,
            chunks_checked: 0,
            bytes_checked: 0,
            damaged: Vec::new(),
        };
        // Frame by frame: every chunk the manifest names must be recorded in one of the
        // snapshot's packs; then those chunks are read (nearby ones of a pack with one
        // range) and checked.
        let packs = self.store.snapshot_packs(record.id).await?;
        let source = Arc::new(source);
        let mut damaged = Vec::new();
        match self.manifest_stream(cipher, cluster.id, &record).await {
            Ok(mut stream) => loop {
                match stream.next_batch().await {
                    Ok(Some(entries)) => {
                        let named = frame_chunks(&entries);
                        let mut found = self.store.chunk_locations(cluster.id, &named).await?;
                        found.sort_unstable_by_key(|l| l.chunk_id);
                        let unknown = named
                            .iter()
                            .find(|id| found.binary_search_by_key(*id, |l| l.chunk_id).is_err());
                        let outside = found
                            .iter()
                            .find(|l| packs.binary_search(&l.pack_id).is_err());
                        // The first problem found is the one reported.
                        let problem = match (unknown, outside) {
                            (Some(id), _) => Some(format!(
                                "the manifest names chunk {id}, which is not recorded"
                            )),
                            (None, Some(l)) => Some(format!(
                                "the manifest names chunk {}, whose pack {} the snapshot's \
                                 record does not name",
                                l.chunk_id, l.pack_id
                            )),
                            (None, None) => None,
                        };
                        if let Some(problem) = problem {
                            report.manifest_ok = false;
                            report.manifest_error.get_or_insert(problem);
                        }
                        found.sort_unstable_by_key(|l| (l.pack_id, l.offset));
                        let (n, bytes, bad) = check_chunks(source.clone(), found).await?;
                        report.chunks_checked += n;
                        report.bytes_checked += bytes;
                        damaged.extend(bad);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        report.manifest_ok = false;
                        report.manifest_error.get_or_insert(e.to_string());
                        break;
                    }
                }
            },
            Err(e) => {
                report.manifest_ok = false;
                report.manifest_error = Some(e.to_string());
            }
        }
        // A chunk named in several frames was checked in each: reported once.
        damaged.sort_unstable_by_key(|(id, ..)| *id);
        damaged.dedup_by_key(|(id, ..)| *id);
        if !damaged.is_empty() {
            let users = self.snapshots_using(&cluster, &record, &damaged).await?;
            for (id, pack_id, reason) in damaged {
                report.damaged.push(DamagedChunk {
                    chunk_id: id,
                    pack_id,
                    reason,
                    snapshot_ids: users.get(&id).cloned().unwrap_or_default(),
                });
            }
        }
        Ok(report)
    }

    /// For each damaged chunk (all of them used by `record`), the snapshots of the
    /// cluster that use it: `record`, and each other snapshot that uses the chunk's pack
    /// and whose manifest names it.
    async fn snapshots_using(
        &self,
        cluster: &Cluster,
        record: &SnapshotRecord,
        damaged: &[(ChunkId, ObjectId, String)],
    ) -> Result<HashMap<ChunkId, Vec<ObjectId>>> {
        let ids: HashSet<ChunkId> = damaged.iter().map(|(id, ..)| *id).collect();
        let packs: HashSet<ObjectId> = damaged.iter().map(|(_, pack, _)| *pack).collect();
        let mut out: HashMap<ChunkId, Vec<ObjectId>> = HashMap::new();
        for s in all_pages(|p| self.store.list_snapshots(cluster.id, p)).await? {
            if s.id == record.id {
                for id in &ids {
                    out.entry(*id).or_default().push(s.id);
                }
                continue;
            }
            let uses_pack = self
                .store
                .snapshot_packs(s.id)
                .await?
                .iter()
                .any(|p| packs.contains(p));
            if !uses_pack {
                continue;
            }
            // Its manifest says which of those chunks it uses (one it cannot read is
            // left out: its own verification reports it).
            let Ok((_, cipher)) = self.chunk_reader(cluster, &s).await else {
                continue;
            };
            let Ok(mut stream) = self.manifest_stream(cipher, cluster.id, &s).await else {
                continue;
            };
            let mut named = HashSet::new();
            while let Ok(Some(entries)) = stream.next_batch().await {
                for (id, _) in entries.iter().flat_map(|e| e.chunks.iter()) {
                    if ids.contains(id) {
                        named.insert(*id);
                    }
                }
            }
            for id in named {
                out.entry(id).or_default().push(s.id);
            }
        }
        Ok(out)
    }
}

/// Reads and checks `chunks` (sorted by pack and offset) on a few threads (at most
/// [`VERIFY_THREADS`]): how many, their plaintext bytes, and each damaged one with its
/// pack and what is wrong. Opening a chunk (decryption, decompression, the id's hash)
/// costs more CPU than reading it, so one thread would leave the other cores idle.
async fn check_chunks(
    source: Arc<ChunkSource>,
    chunks: Vec<ChunkLocation>,
) -> Result<(u64, u64, Vec<(ChunkId, ObjectId, String)>)> {
    tokio::task::spawn_blocking(move || {
        // Nearby chunks of a pack in one read: a chunk per read would be a blob store
        // call per chunk.
        let runs = pack_runs(&chunks, VERIFY_GAP, VERIFY_SPAN);
        let next = AtomicUsize::new(0);
        let threads = worker_threads(VERIFY_THREADS).min(runs.len().max(1));
        let check = || {
            let mut bad = Vec::new();
            let mut bytes = 0u64;
            while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                for (loc, read) in run.iter().zip(source.read_run(run)) {
                    match read {
                        Ok(data) => bytes += data.len() as u64,
                        Err(reason) => bad.push((loc.chunk_id, loc.pack_id, reason)),
                    }
                }
            }
            (bytes, bad)
        };
        let (bytes, bad) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|_| scope.spawn(check)).collect();
            workers
                .into_iter()
                .fold((0u64, Vec::new()), |(b, mut all), w| {
                    let (bytes, bad) = w.join().expect("a verify thread panicked");
                    all.extend(bad);
                    (b + bytes, all)
                })
        });
        (chunks.len() as u64, bytes, bad)
    })
    .await
    .map_err(|e| ServiceError::unexpected(format!("verify thread failed: {e}")))
}
