//! Garbage collection: chunks, packs and manifests that no committed snapshot uses,
//! for one cluster or every cluster.

use std::collections::HashSet;

use headlock_core::ObjectId;

use super::{all_pages, blob_err, rekeyed_manifest_path};
use crate::{Result, Service};

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

impl Service {
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
        // Deletes the records of the packs no snapshot uses, and of their chunks; those
        // packs are then not in use, and the listing below finds them with every other
        // orphan.
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
