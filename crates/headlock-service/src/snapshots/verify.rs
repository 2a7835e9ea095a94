//! Verification: a snapshot read back, its manifest and every chunk checked, each damaged
//! chunk named with its pack and the snapshots that use it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use headlock_core::ObjectId;
use headlock_core::model::{ChunkId, Cluster};

use super::all_pages;
use super::read::pack_runs;
use crate::{Actor, Result, Service, ServiceError};

/// Most bytes skipped between two chunks read with one range.
const VERIFY_GAP: u64 = 256 * 1024;
/// Most bytes of one range (a larger chunk is read alone).
const VERIFY_SPAN: u64 = 8 * 1024 * 1024;
/// Chunk locations read from the store at a time.
const VERIFY_PAGE: usize = 8192;

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
        // Frame by frame: every chunk the manifest names must be recorded (the store is
        // asked about each frame's chunks).
        match self.manifest_stream(cipher, cluster.id, &record).await {
            Ok(mut stream) => loop {
                match stream.next_batch().await {
                    Ok(Some(entries)) => {
                        let mut named: Vec<ChunkId> = entries
                            .iter()
                            .flat_map(|e| e.chunks.iter().map(|(id, _)| *id))
                            .collect();
                        named.sort_unstable();
                        named.dedup();
                        let mut used = self.store.snapshot_uses(record.id, &named).await?;
                        used.sort_unstable();
                        let unknown = named.iter().find(|id| used.binary_search(id).is_err());
                        if let Some(id) = unknown {
                            report.manifest_ok = false;
                            report.manifest_error = Some(format!(
                                "the manifest names chunk {id}, which is not recorded"
                            ));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        report.manifest_ok = false;
                        report.manifest_error = Some(e.to_string());
                        break;
                    }
                }
            },
            Err(e) => {
                report.manifest_ok = false;
                report.manifest_error = Some(e.to_string());
            }
        }
        // Every chunk the snapshot uses, a page of locations at a time (in chunk id
        // order), each page read sorted by pack and offset.
        let source = Arc::new(source);
        let mut checked = (0u64, 0u64, Vec::new());
        let mut after = None;
        loop {
            let mut page = self
                .store
                .snapshot_chunks_page(record.id, after, VERIFY_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.chunk_id);
            let n = page.len();
            let full = n == VERIFY_PAGE;
            page.sort_unstable_by_key(|l| (l.pack_id, l.offset));
            let source = source.clone();
            let (bytes, bad) = tokio::task::spawn_blocking(move || {
                let mut bad = Vec::new();
                let mut bytes = 0u64;
                // Nearby chunks of a pack in one read: a page's chunks are scattered
                // over the snapshot's packs, a chunk per read would be a blob store
                // call per chunk.
                for run in pack_runs(&page, VERIFY_GAP, VERIFY_SPAN) {
                    for (loc, read) in run.iter().zip(source.read_run(run)) {
                        match read {
                            Ok(data) => bytes += data.len() as u64,
                            Err(reason) => bad.push((loc.chunk_id, loc.pack_id, reason)),
                        }
                    }
                }
                (bytes, bad)
            })
            .await
            .map_err(|e| ServiceError::unexpected(format!("verify thread failed: {e}")))?;
            checked.0 += n as u64;
            checked.1 += bytes;
            checked.2.extend(bad);
            if !full {
                break;
            }
        }
        report.chunks_checked = checked.0;
        report.bytes_checked = checked.1;
        if !checked.2.is_empty() {
            let users = self
                .snapshots_using(&cluster, checked.2.iter().map(|(id, ..)| *id).collect())
                .await?;
            for (id, pack_id, reason) in checked.2 {
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
}
