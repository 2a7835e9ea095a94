//! The snapshot records: one, a page of them, changing `expires`/`doNotDelete`, and
//! deleting one (then collecting the cluster's garbage).

use headlock_core::model::Page;

use super::{GcReport, SnapshotView};
use crate::error::Conflict;
use crate::{Actor, Result, Service};

impl Service {
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
}
