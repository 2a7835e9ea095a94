//! [`GroupStore`] on SQL: groups, clusters and their backup configs, and the rewrite of
//! backup configs that a key change (`keys.rs`) also runs inside its own transaction.
//!
//! A cluster with snapshots, or with chunks not yet collected, cannot be deleted
//! ([`StoreError::Precondition`]); its restore jobs, key records, intents and lifecycle
//! records go with it.

use async_trait::async_trait;
use headlock_core::model::{AuditEvent, BackupConfig, Cluster, Group, Page};
use headlock_core::store::GroupStore;
use headlock_core::{ObjectId, StoreConflict as Conflict, StoreError};

use crate::audit::append_audit_in;
use crate::db::{Tx, stmt};
use crate::error::{classify, ctx, ctx_unique};
use crate::lifecycle;
use crate::queries as q;
use crate::rows::{self, id_text, json_list, micros, opt_id_text};
use crate::{SqlStore, limit_offset, retrying, to_u64};

#[async_trait]
impl GroupStore for SqlStore {
    async fn insert_group(&self, group: &Group) -> Result<(), StoreError> {
        stmt(q::INSERT_GROUP)
            .bind(id_text(group.id))
            .bind(&group.name)
            .bind(id_text(group.org_id))
            .bind(micros(group.created))
            .execute(&self.pool)
            .await
            .map_err(ctx_unique(
                &format!("inserting group {} named {:?}", group.id, group.name),
                Conflict::GroupName,
            ))?;
        Ok(())
    }

    async fn group(&self, id: ObjectId) -> Result<Option<Group>, StoreError> {
        self.find(
            q::GROUP_BY_ID,
            &[id],
            || format!("reading group {id}"),
            rows::group,
        )
        .await
    }

    async fn group_by_name(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let row = stmt(q::GROUP_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading group named {name:?}"), e))?;
        row.as_ref().map(rows::group).transpose()
    }

    async fn list_groups(&self, page: Page) -> Result<(Vec<Group>, u64), StoreError> {
        self.list_page(
            (q::LIST_GROUPS, q::COUNT_GROUPS),
            None,
            page,
            "listing groups",
            rows::group,
        )
        .await
    }

    async fn cluster_count(&self, group: ObjectId) -> Result<u64, StoreError> {
        self.count(
            q::COUNT_TOP_LEVEL_CLUSTERS,
            Some(group),
            &format!("counting clusters of group {group}"),
        )
        .await
    }

    async fn insert_clusters(
        &self,
        clusters: &[Cluster],
        configs: &[BackupConfig],
    ) -> Result<(), StoreError> {
        retrying("insert_clusters", || async move {
            let mut tx = self.begin_write("inserting clusters").await?;
            // Whole clusters before their parts, so that parent references resolve.
            let ordered = clusters
                .iter()
                .filter(|c| c.parent_cluster_id.is_none())
                .chain(clusters.iter().filter(|c| c.parent_cluster_id.is_some()));
            for c in ordered {
                stmt(q::INSERT_CLUSTER)
                    .bind(id_text(c.id))
                    .bind(id_text(c.group_id))
                    .bind(&c.cluster_name)
                    .bind(c.type_name.as_str())
                    .bind(&c.replica_set_name)
                    .bind(&c.shard_name)
                    .bind(opt_id_text(c.parent_cluster_id))
                    .bind(micros(c.created))
                    .execute(&mut tx)
                    .await
                    .map_err(ctx_unique(
                        &format!(
                            "inserting cluster {} named {:?} in group {}",
                            c.id, c.cluster_name, c.group_id
                        ),
                        Conflict::ClusterName,
                    ))?;
            }
            for b in configs {
                stmt(q::INSERT_CONFIG)
                    .bind(id_text(b.cluster_id))
                    .bind(id_text(b.group_id))
                    .bind(b.status.as_str())
                    .bind(b.encryption_enabled)
                    .bind(&b.storage_engine_name)
                    .bind(b.ssl_enabled)
                    .bind(json_list(&b.excluded_namespaces))
                    .bind(json_list(&b.included_namespaces))
                    .bind(b.auth_mechanism.as_str())
                    .execute(&mut tx)
                    .await
                    .map_err(|e| {
                        classify(
                            &format!("inserting backup config of cluster {}", b.cluster_id),
                            e,
                        )
                    })?;
            }
            tx.commit()
                .await
                .map_err(ctx("committing inserted clusters"))
        })
        .await
    }

    async fn cluster(&self, group: ObjectId, id: ObjectId) -> Result<Option<Cluster>, StoreError> {
        let what = || format!("reading cluster {id} of group {group}");
        self.find(q::CLUSTER_IN_GROUP, &[group, id], what, rows::cluster)
            .await
    }

    async fn cluster_any_group(&self, id: ObjectId) -> Result<Option<Cluster>, StoreError> {
        self.find(
            q::CLUSTER_BY_ID,
            &[id],
            || format!("reading cluster {id}"),
            rows::cluster,
        )
        .await
    }

    async fn list_clusters(
        &self,
        group: ObjectId,
        parent: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<Cluster>, u64), StoreError> {
        let (limit, offset) = limit_offset(page);
        let op = format!("listing clusters of group {group}");
        let (found, total) = match parent {
            None => {
                let found = stmt(q::LIST_CLUSTERS)
                    .bind(id_text(group))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(ctx(&op))?;
                (
                    found,
                    self.count(q::COUNT_CLUSTERS, Some(group), &op).await?,
                )
            }
            Some(parent) => {
                let found = stmt(q::LIST_CLUSTER_PARTS_PAGE)
                    .bind(id_text(group))
                    .bind(id_text(parent))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(ctx(&op))?;
                let total = stmt(q::COUNT_CLUSTER_PARTS)
                    .bind(id_text(group))
                    .bind(id_text(parent))
                    .fetch_i64(&self.pool)
                    .await
                    .map_err(ctx(&op))?;
                (found, to_u64(total))
            }
        };
        let clusters = found
            .iter()
            .map(rows::cluster)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((clusters, total))
    }

    async fn cluster_parts(&self, parent: ObjectId) -> Result<Vec<Cluster>, StoreError> {
        let found = stmt(q::CLUSTER_PARTS)
            .bind(id_text(parent))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading parts of cluster {parent}"), e))?;
        found.iter().map(rows::cluster).collect()
    }

    async fn delete_cluster(&self, group: ObjectId, id: ObjectId) -> Result<(), StoreError> {
        retrying("delete_cluster", || async move {
            let op = format!("deleting cluster {id} of group {group}");
            let mut tx = self.begin_write(&op).await?;
            // PostgreSQL: waits for (and then holds off) writes that refer to the cluster or
            // a part, e.g. a snapshot commit in flight, so the counts below see them.
            SqlStore::lock_cluster(&mut tx, q::CLUSTER_TREE_LOCK, id, &op).await?;
            let exists = stmt(q::CLUSTER_IN_GROUP)
                .bind(id_text(group))
                .bind(id_text(id))
                .fetch_optional(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!(
                    "{op}: no such cluster in the group"
                )));
            }
            // Snapshots and chunks are backups: never dropped with their cluster. (The schema
            // refuses it too; this says why.)
            for (count, what) in [
                (q::COUNT_TREE_SNAPSHOTS, "snapshots: delete them first"),
                (
                    q::COUNT_TREE_PACKS,
                    "stored packs no snapshot uses: collect garbage first",
                ),
            ] {
                let n = stmt(count)
                    .bind(id_text(id))
                    .fetch_i64(&mut tx)
                    .await
                    .map_err(ctx(&op))?;
                if n > 0 {
                    return Err(StoreError::Precondition(format!(
                        "{op}: the cluster (or a part of it) has {n} {what}"
                    )));
                }
            }
            for statement in [
                q::DELETE_TREE_RESTORE_JOBS,
                q::DELETE_TREE_DATA_KEYS,
                q::DELETE_TREE_MASTER_KEYS,
                q::DELETE_TREE_INTENTS,
                lifecycle::DELETE_TREE_LIFECYCLE,
                lifecycle::DELETE_TREE_KEY_ERRORS,
                lifecycle::DELETE_TREE_FATES,
                q::DELETE_TREE_CONFIGS,
                q::DELETE_CLUSTER_PARTS,
                q::DELETE_CLUSTER,
            ] {
                stmt(statement)
                    .bind(id_text(id))
                    .execute(&mut tx)
                    .await
                    .map_err(ctx(&op))?;
            }
            tx.commit().await.map_err(ctx(&op))
        })
        .await
    }

    async fn cluster_with_config(
        &self,
        group: ObjectId,
        id: ObjectId,
    ) -> Result<Option<(Cluster, BackupConfig)>, StoreError> {
        let what = || format!("reading cluster {id} of group {group} with its backup config");
        self.find(q::CLUSTER_WITH_CONFIG, &[group, id], what, |row| {
            Ok((rows::cluster(row)?, rows::backup_config(row)?))
        })
        .await
    }

    async fn backup_config(
        &self,
        group: ObjectId,
        cluster: ObjectId,
    ) -> Result<Option<BackupConfig>, StoreError> {
        let what = || format!("reading backup config of cluster {cluster}");
        self.find(q::CONFIG, &[group, cluster], what, rows::backup_config)
            .await
    }

    async fn list_backup_configs(
        &self,
        group: ObjectId,
        page: Page,
    ) -> Result<(Vec<BackupConfig>, u64), StoreError> {
        let op = format!("listing backup configs of group {group}");
        self.list_page(
            (q::LIST_CONFIGS, q::COUNT_CONFIGS),
            Some(group),
            page,
            &op,
            rows::backup_config,
        )
        .await
    }

    async fn update_backup_configs(
        &self,
        configs: &[BackupConfig],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        retrying("update_backup_configs", || async move {
            let mut tx = self.begin_write("updating backup configs").await?;
            update_configs_in(&mut tx, configs).await?;
            for event in audit {
                append_audit_in(&mut tx, event).await?;
            }
            tx.commit().await.map_err(ctx("committing backup configs"))
        })
        .await
    }
}

/// Rewrites backup configs inside the caller's transaction, in cluster id order (so that
/// two transactions that rewrite the same configs on PostgreSQL lock their rows in one
/// order, and cannot deadlock on them); `NotFound` if a cluster has no config in that
/// group. A config listed twice is written twice, in the order given.
pub(crate) async fn update_configs_in(
    tx: &mut Tx,
    configs: &[BackupConfig],
) -> Result<(), StoreError> {
    let mut ordered: Vec<&BackupConfig> = configs.iter().collect();
    ordered.sort_by_key(|c| c.cluster_id);
    for config in ordered {
        update_config_in(tx, config).await?;
    }
    Ok(())
}

/// Rewrites one backup config inside the caller's transaction; `NotFound` if the cluster
/// has no config in that group.
pub(crate) async fn update_config_in(tx: &mut Tx, config: &BackupConfig) -> Result<(), StoreError> {
    let op = || format!("updating backup config of cluster {}", config.cluster_id);
    let done = stmt(q::UPDATE_CONFIG)
        .bind(id_text(config.cluster_id))
        .bind(id_text(config.group_id))
        .bind(config.status.as_str())
        .bind(config.encryption_enabled)
        .bind(&config.storage_engine_name)
        .bind(config.ssl_enabled)
        .bind(json_list(&config.excluded_namespaces))
        .bind(json_list(&config.included_namespaces))
        .bind(config.auth_mechanism.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    if done == 0 {
        return Err(StoreError::NotFound(format!(
            "{}: no backup config for cluster {} in group {}",
            op(),
            config.cluster_id,
            config.group_id
        )));
    }
    Ok(())
}
