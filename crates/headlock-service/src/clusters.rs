//! Clusters and their backup configs.
//!
//! Clusters are registered through the API (Ops Manager discovers them from its agents;
//! Headlock has no agents). A sharded cluster is N + 2 records, as in Ops Manager: the
//! whole cluster, one `REPLICA_SET` per shard (with `shardName`), and the
//! `CONFIG_SERVER_REPLICA_SET`, each with its own id and backup config. Only the parts hold
//! data and master keys; the whole cluster's config mirrors them, and a change to it is a
//! change to every part.

use headlock_core::model::{
    AuthMechanism, BackupConfig, BackupStatus, Cluster, ClusterType, Group, Page, RotationType,
};
use headlock_core::{KmipUid, ObjectId};
use headlock_core::{StoreConflict, StoreError};

use crate::error::{Conflict, Duplicated, NotFound};
use crate::groups::parse_cluster_id;
use crate::{Actor, Result, Service, ServiceError};

/// Longest cluster, shard or replica set name accepted.
pub const MAX_NAME: usize = 64;
/// Most shards in one sharded cluster.
pub const MAX_SHARDS: usize = 1024;
/// Most namespaces in `excludedNamespaces` / `includedNamespaces`.
pub const MAX_NAMESPACES: usize = 10_000;

/// One shard of a cluster being registered.
#[derive(Debug, Clone)]
pub struct NewShard {
    /// `shardName`.
    pub shard_name: String,
    /// `replicaSetName`.
    pub replica_set_name: String,
}

/// A cluster being registered.
#[derive(Debug, Clone)]
pub struct NewCluster {
    /// `clusterName`.
    pub cluster_name: String,
    /// `typeName`: `REPLICA_SET` or `SHARDED_REPLICA_SET`.
    pub type_name: ClusterType,
    /// `replicaSetName` (replica sets; defaults to the cluster name).
    pub replica_set_name: Option<String>,
    /// `shards` (sharded clusters).
    pub shards: Vec<NewShard>,
    /// `configServerReplicaSet` (sharded clusters).
    pub config_server_replica_set: Option<String>,
}

/// A change to a backup config; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct BackupConfigPatch {
    /// `statusName`.
    pub status: Option<BackupStatus>,
    /// `encryptionEnabled`.
    pub encryption_enabled: Option<bool>,
    /// `storageEngineName`.
    pub storage_engine_name: Option<String>,
    /// `sslEnabled`.
    pub ssl_enabled: Option<bool>,
    /// `excludedNamespaces`.
    pub excluded_namespaces: Option<Vec<String>>,
    /// `includedNamespaces`.
    pub included_namespaces: Option<Vec<String>>,
    /// `authMechanismName`.
    pub auth_mechanism: Option<AuthMechanism>,
    /// `encryptionKeyRotationPeriodDays` (extension; 0 off, 1 to 3650).
    pub rotation_period_days: Option<i64>,
    /// `retiredKeyDestroyAfterDays` (extension; 0 off, 1 to 3650).
    pub retired_key_destroy_after_days: Option<i64>,
}

/// What `GET .../encryptionKey` shows.
#[derive(Debug, Clone)]
pub struct EncryptionKeyView {
    /// Group.
    pub group_id: ObjectId,
    /// Cluster.
    pub cluster_id: ObjectId,
    /// The current master key's KMIP uid (absent for a whole sharded cluster).
    pub encryption_key_uuid: Option<KmipUid>,
    /// For a whole sharded cluster: each part and its current key.
    pub parts: Vec<(ObjectId, KmipUid)>,
}

fn check_name(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME
        || name
            .chars()
            .any(|c| c == '/' || crate::names::is_refused_in_name(c))
    {
        return Err(ServiceError::invalid_input(format!(
            "{what} must be 1 to {MAX_NAME} characters, without '/', control characters or Unicode bidi controls."
        )));
    }
    Ok(name.to_string())
}

fn check_namespaces(what: &str, list: &[String]) -> Result<()> {
    // No control characters: a namespace is shown in the console, the CLI's tables and
    // logs, where a newline or an escape sequence would forge or hide text.
    let bad = |n: &String| n.is_empty() || n.len() > 255 || n.chars().any(char::is_control);
    if list.len() > MAX_NAMESPACES || list.iter().any(bad) {
        return Err(ServiceError::invalid_input(format!(
            "{what} takes at most {MAX_NAMESPACES} namespaces of 1 to 255 bytes, without \
             control characters."
        )));
    }
    Ok(())
}

/// The status a config moves to when `to` is requested, or the Ops Manager error.
fn next_status(from: BackupStatus, to: BackupStatus) -> Result<BackupStatus> {
    use BackupStatus::*;
    if from == to {
        return Ok(to);
    }
    let ok = match to {
        Started => matches!(from, Inactive | Stopped | Provisioning),
        Stopped => matches!(from, Started | Provisioning),
        // Terminating completes at once: there is no agent-side state to clean up, so the
        // config goes straight to INACTIVE, which is what clients poll for.
        Terminating => matches!(from, Stopped),
        Inactive | Provisioning => false,
    };
    if !ok {
        return Err(Conflict::InvalidStatusTransition { from, to }.into());
    }
    Ok(if to == Terminating { Inactive } else { to })
}

impl Service {
    /// Registers a cluster (and, for a sharded cluster, its parts).
    pub async fn register_cluster(
        &self,
        actor: &Actor,
        group_id: &str,
        new: NewCluster,
    ) -> Result<Vec<Cluster>> {
        let group = self.groups.admin_group(actor, group_id).await?;
        let cluster_name = check_name("clusterName", &new.cluster_name)?;
        let now = crate::now();
        let mut clusters = Vec::new();
        match new.type_name {
            ClusterType::ReplicaSet => {
                if !new.shards.is_empty() || new.config_server_replica_set.is_some() {
                    return Err(ServiceError::invalid_input(
                        "A REPLICA_SET takes no shards and no configServerReplicaSet.".into(),
                    ));
                }
                let rs = check_name(
                    "replicaSetName",
                    new.replica_set_name.as_deref().unwrap_or(&cluster_name),
                )?;
                clusters.push(Cluster {
                    id: ObjectId::new(),
                    group_id: group.id,
                    cluster_name,
                    type_name: ClusterType::ReplicaSet,
                    replica_set_name: Some(rs),
                    shard_name: None,
                    parent_cluster_id: None,
                    created: now,
                });
            }
            ClusterType::ShardedReplicaSet => {
                if new.shards.is_empty() || new.shards.len() > MAX_SHARDS {
                    return Err(ServiceError::invalid_input(format!(
                        "A SHARDED_REPLICA_SET needs 1 to {MAX_SHARDS} shards."
                    )));
                }
                let Some(config_rs) = new.config_server_replica_set.as_deref() else {
                    return Err(ServiceError::invalid_input(
                        "A SHARDED_REPLICA_SET needs configServerReplicaSet.".into(),
                    ));
                };
                let config_rs = check_name("configServerReplicaSet", config_rs)?;
                let whole = ObjectId::new();
                clusters.push(Cluster {
                    id: whole,
                    group_id: group.id,
                    cluster_name: cluster_name.clone(),
                    type_name: ClusterType::ShardedReplicaSet,
                    replica_set_name: None,
                    shard_name: None,
                    parent_cluster_id: None,
                    created: now,
                });
                let mut seen = std::collections::HashSet::new();
                for shard in &new.shards {
                    let shard_name = check_name("shardName", &shard.shard_name)?;
                    let rs = check_name("replicaSetName", &shard.replica_set_name)?;
                    if !seen.insert(rs.clone()) || rs == config_rs {
                        return Err(ServiceError::invalid_input(format!(
                            "Replica set name {rs} appears twice in the cluster."
                        )));
                    }
                    clusters.push(Cluster {
                        id: ObjectId::new(),
                        group_id: group.id,
                        cluster_name: cluster_name.clone(),
                        type_name: ClusterType::ReplicaSet,
                        replica_set_name: Some(rs),
                        shard_name: Some(shard_name),
                        parent_cluster_id: Some(whole),
                        created: now,
                    });
                }
                clusters.push(Cluster {
                    id: ObjectId::new(),
                    group_id: group.id,
                    cluster_name,
                    type_name: ClusterType::ConfigServerReplicaSet,
                    replica_set_name: Some(config_rs),
                    shard_name: None,
                    parent_cluster_id: Some(whole),
                    created: now,
                });
            }
            ClusterType::ConfigServerReplicaSet => {
                return Err(ServiceError::invalid_input(
                    "typeName must be REPLICA_SET or SHARDED_REPLICA_SET; config servers are registered with their sharded cluster.".into(),
                ));
            }
        }
        let configs: Vec<BackupConfig> = clusters
            .iter()
            .map(|c| BackupConfig::new_inactive(group.id, c.id))
            .collect();
        match self.store.insert_clusters(&clusters, &configs).await {
            Ok(()) => {}
            Err(StoreError::Conflict(StoreConflict::ClusterName)) => {
                return Err(Conflict::Duplicate {
                    what: Duplicated::ClusterName,
                    message: format!(
                        "A cluster named {} already exists in group {}.",
                        clusters[0].cluster_name, group.id
                    ),
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        let event = actor.event(
            "CLUSTER_REGISTERED",
            Some(group.id),
            Some(clusters[0].id),
            "SUCCESS",
            Some(&format!(
                "{} {}",
                clusters[0].type_name, clusters[0].cluster_name
            )),
        );
        self.store.append_audit(&event).await?;
        Ok(clusters)
    }

    /// One cluster.
    pub async fn cluster(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<Cluster> {
        let group = self.groups.readable_group(actor, group_id).await?;
        self.cluster_in(&group, cluster_id).await
    }

    pub(crate) async fn cluster_in(&self, group: &Group, cluster_id: &str) -> Result<Cluster> {
        let id = parse_cluster_id(cluster_id)?;
        self.store.cluster(group.id, id).await?.ok_or_else(|| {
            NotFound::Cluster {
                cluster: id,
                group: group.id,
            }
            .into()
        })
    }

    /// [`Self::cluster_in`] and its backup config ([`Self::config_of`]), read together;
    /// when either is missing, the same 404 as those two.
    pub(crate) async fn cluster_and_config(
        &self,
        group: &Group,
        cluster_id: &str,
    ) -> Result<(Cluster, BackupConfig)> {
        let id = parse_cluster_id(cluster_id)?;
        if let Some(found) = self.store.cluster_with_config(group.id, id).await? {
            return Ok(found);
        }
        // One of the two is missing: say which.
        let cluster = self.cluster_in(group, cluster_id).await?;
        let config = self.config_of(&cluster).await?;
        Ok((cluster, config))
    }

    /// A page of a group's clusters, optionally the parts of one sharded cluster.
    pub async fn list_clusters(
        &self,
        actor: &Actor,
        group_id: &str,
        parent_cluster_id: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Cluster>, u64)> {
        let group = self.groups.readable_group(actor, group_id).await?;
        let parent = match parent_cluster_id {
            Some(p) => Some(self.cluster_in(&group, p).await?.id),
            None => None,
        };
        Ok(self.store.list_clusters(group.id, parent, page).await?)
    }

    /// Deletes a cluster and its parts. Current master keys are revoked in the KMIP
    /// server first (nothing needs them once the cluster's records are gone); if that
    /// fails, nothing is deleted.
    pub async fn delete_cluster(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<()> {
        let group = self.groups.admin_group(actor, group_id).await?;
        let cluster = self.cluster_in(&group, cluster_id).await?;
        if cluster.parent_cluster_id.is_some() {
            return Err(Conflict::CannotDeleteCluster(format!(
                "Cluster {} is part of a sharded cluster; delete the whole cluster {}.",
                cluster.id,
                cluster
                    .parent_cluster_id
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            ))
            .into());
        }
        let mut parts = vec![cluster.clone()];
        parts.extend(self.store.cluster_parts(cluster.id).await?);
        for part in &parts {
            let n = self.store.snapshot_count(part.id).await?;
            if n > 0 {
                return Err(Conflict::CannotDeleteCluster(format!(
                    "Cluster {} has {n} snapshots; delete them before the cluster.",
                    part.id
                ))
                .into());
            }
        }
        // Whatever no snapshot uses must be gone before the records can be, and before
        // the keys that could still read it are revoked.
        if self.blobs.is_some() {
            for part in parts.iter().filter(|p| !p.is_sharded_whole()) {
                self.collect_garbage(part.id).await?;
            }
        }
        let mut guards = Vec::new();
        for part in &parts {
            guards.push(self.locks.lock(part.id).await);
        }
        for part in &parts {
            if let Some(key) = self.store.current_master_key(part.id).await? {
                self.keys
                    .revoke(&key.kmip_uid, headlock_core::keys::RevokeReason::Abandoned)
                    .await?;
            }
        }
        self.store.delete_cluster(group.id, cluster.id).await?;
        self.cache.invalidate_keys();
        let event = actor.event(
            "CLUSTER_DELETED",
            Some(group.id),
            Some(cluster.id),
            "SUCCESS",
            Some(&cluster.cluster_name),
        );
        self.store.append_audit(&event).await?;
        drop(guards);
        Ok(())
    }

    /// A cluster's backup config.
    pub async fn backup_config(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<BackupConfig> {
        let group = self.groups.readable_group(actor, group_id).await?;
        Ok(self.cluster_and_config(&group, cluster_id).await?.1)
    }

    pub(crate) async fn config_of(&self, cluster: &Cluster) -> Result<BackupConfig> {
        self.store
            .backup_config(cluster.group_id, cluster.id)
            .await?
            .ok_or_else(|| {
                NotFound::BackupConfig {
                    cluster: cluster.id,
                    group: cluster.group_id,
                }
                .into()
            })
    }

    /// A page of a group's backup configs.
    pub async fn list_backup_configs(
        &self,
        actor: &Actor,
        group_id: &str,
        page: Page,
    ) -> Result<(Vec<BackupConfig>, u64)> {
        let group = self.groups.readable_group(actor, group_id).await?;
        Ok(self.store.list_backup_configs(group.id, page).await?)
    }

    /// Changes a backup config. On a shard or config server replica set this is refused
    /// (`CANNOT_MODIFY_SHARD_BACKUP_CONFIG`, naming the whole cluster); on a whole sharded
    /// cluster it applies to every part. Turning `encryptionEnabled` on creates each part's
    /// first master key in the KMIP server and its first data key, wrapped by it.
    pub async fn patch_backup_config(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        patch: BackupConfigPatch,
    ) -> Result<BackupConfig> {
        let group = self.groups.admin_group(actor, group_id).await?;
        let cluster = self.cluster_in(&group, cluster_id).await?;
        if let Some(whole) = cluster.parent_cluster_id {
            return Err(Conflict::CannotModifyShardBackupConfig {
                whole_cluster: whole,
            }
            .into());
        }
        if let Some(list) = &patch.excluded_namespaces {
            check_namespaces("excludedNamespaces", list)?;
        }
        if let Some(list) = &patch.included_namespaces {
            check_namespaces("includedNamespaces", list)?;
        }
        let rotation_period = patch
            .rotation_period_days
            .map(|d| crate::lifecycle::check_days("encryptionKeyRotationPeriodDays", d))
            .transpose()?;
        let destroy_after = patch
            .retired_key_destroy_after_days
            .map(|d| crate::lifecycle::check_days("retiredKeyDestroyAfterDays", d))
            .transpose()?;
        if let Some(name) = &patch.storage_engine_name
            && !matches!(name.as_str(), "WIRED_TIGER" | "MEMORY_MAPPED")
        {
            return Err(ServiceError::invalid_input(
                "storageEngineName must be WIRED_TIGER or MEMORY_MAPPED.".into(),
            ));
        }
        let mut parts = vec![cluster.clone()];
        parts.extend(self.store.cluster_parts(cluster.id).await?);

        let current = self.config_of(&cluster).await?;
        let mut updated = current.clone();
        if let Some(to) = patch.status {
            updated.status = next_status(current.status, to)?;
        }
        if let Some(v) = patch.storage_engine_name {
            updated.storage_engine_name = v;
        }
        if let Some(v) = patch.ssl_enabled {
            updated.ssl_enabled = v;
        }
        if let Some(v) = patch.excluded_namespaces {
            updated.excluded_namespaces = v;
        }
        if let Some(v) = patch.included_namespaces {
            updated.included_namespaces = v;
        }
        if let Some(v) = patch.auth_mechanism {
            updated.auth_mechanism = v;
        }
        if !updated.excluded_namespaces.is_empty() && !updated.included_namespaces.is_empty() {
            return Err(ServiceError::invalid_input(
                "Set excludedNamespaces or includedNamespaces, not both.".into(),
            ));
        }
        let enable = patch.encryption_enabled == Some(true) && !current.encryption_enabled;
        let disable = patch.encryption_enabled == Some(false) && current.encryption_enabled;
        if disable {
            for part in &parts {
                if self.store.snapshot_count(part.id).await? > 0 {
                    return Err(Conflict::EncryptionHasSnapshots(part.id).into());
                }
            }
        }

        // Everything but encryption first, for every part, in one transaction.
        let mut configs = Vec::with_capacity(parts.len());
        for part in &parts {
            let mut c = self.config_of(part).await?;
            c.status = updated.status;
            c.storage_engine_name = updated.storage_engine_name.clone();
            c.ssl_enabled = updated.ssl_enabled;
            c.excluded_namespaces = updated.excluded_namespaces.clone();
            c.included_namespaces = updated.included_namespaces.clone();
            c.auth_mechanism = updated.auth_mechanism;
            if disable {
                c.encryption_enabled = false;
            }
            configs.push(c);
        }
        let mut audit = vec![actor.event(
            "BACKUP_CONFIG_CHANGED",
            Some(group.id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!("statusName {}", updated.status)),
        )];
        if disable {
            audit.push(actor.event(
                "BACKUP_ENCRYPTION_DISABLED",
                Some(group.id),
                Some(cluster.id),
                "SUCCESS",
                None,
            ));
        }
        self.store.update_backup_configs(&configs, &audit).await?;
        self.cache.invalidate_keys();
        self.patch_key_lifecycle(actor, &cluster, &parts, rotation_period, destroy_after)
            .await?;

        if enable {
            // Each data-bearing part gets its first master key (or keeps the one it has,
            // if encryption was on before) and its config flips in the same commit.
            for part in parts.iter().filter(|p| !p.is_sharded_whole()) {
                self.ensure_encryption(actor, part, RotationType::Initial)
                    .await?;
            }
            if cluster.is_sharded_whole() {
                let mut c = self.config_of(&cluster).await?;
                c.encryption_enabled = true;
                let event = actor.event(
                    "BACKUP_ENCRYPTION_ENABLED",
                    Some(group.id),
                    Some(cluster.id),
                    "SUCCESS",
                    Some("every shard and the config server replica set"),
                );
                self.store.update_backup_configs(&[c], &[event]).await?;
                self.cache.invalidate_keys();
            }
        }
        self.config_of(&cluster).await
    }

    /// The current master key of a cluster (`GET .../encryptionKey`). Reads only the
    /// service's own records: no KMIP round trip.
    pub async fn encryption_key(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<EncryptionKeyView> {
        let g = crate::groups::parse_group_id(group_id)?;
        actor.require_read(g)?;
        if let Ok(c) = parse_cluster_id(cluster_id)
            && let Some(view) = self.cache.key(g, c)
        {
            return Ok(view);
        }
        let ticket = self.cache.ticket();
        let view = self
            .encryption_key_uncached(actor, group_id, cluster_id)
            .await?;
        self.cache.put_key(ticket, view.clone());
        Ok(view)
    }

    async fn encryption_key_uncached(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<EncryptionKeyView> {
        let group = self.groups.readable_group(actor, group_id).await?;
        let (cluster, config) = self.cluster_and_config(&group, cluster_id).await?;
        if !config.encryption_enabled {
            return Err(Conflict::EncryptionDisabledGet(cluster.id).into());
        }
        let mut view = EncryptionKeyView {
            group_id: group.id,
            cluster_id: cluster.id,
            encryption_key_uuid: None,
            parts: Vec::new(),
        };
        if cluster.is_sharded_whole() {
            for part in self.store.cluster_parts(cluster.id).await? {
                if let Some(k) = self.store.current_master_key(part.id).await? {
                    view.parts.push((part.id, k.kmip_uid));
                }
            }
        } else {
            let key = self
                .store
                .current_master_key(cluster.id)
                .await?
                .ok_or(Conflict::EncryptionDisabledGet(cluster.id))?;
            view.encryption_key_uuid = Some(key.kmip_uid);
        }
        Ok(view)
    }

    /// Rotates the master key (`PUT .../encryptionKey`): of one replica set, shard or
    /// config server replica set, or of every part of a whole sharded cluster.
    pub async fn rotate_encryption_key(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<()> {
        let group = self.groups.admin_group(actor, group_id).await?;
        let (cluster, config) = self.cluster_and_config(&group, cluster_id).await?;
        if !config.encryption_enabled {
            return Err(Conflict::EncryptionDisabledRotate(cluster.id).into());
        }
        if cluster.is_sharded_whole() {
            for part in self.store.cluster_parts(cluster.id).await? {
                self.rotate(actor, &part, RotationType::Manual).await?;
            }
            Ok(())
        } else {
            self.rotate(actor, &cluster, RotationType::Manual).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackupStatus::*;

    #[test]
    fn accepts_the_ops_manager_lifecycle() {
        assert_eq!(next_status(Inactive, Started).unwrap(), Started);
        assert_eq!(next_status(Started, Stopped).unwrap(), Stopped);
        assert_eq!(next_status(Stopped, Started).unwrap(), Started);
        assert_eq!(next_status(Stopped, Terminating).unwrap(), Inactive);
        assert_eq!(next_status(Started, Started).unwrap(), Started);
    }

    #[test]
    fn rejects_illegal_transitions() {
        assert!(next_status(Started, Terminating).is_err());
        assert!(next_status(Inactive, Stopped).is_err());
        assert!(next_status(Started, Inactive).is_err());
    }
}

/// One master key a cluster has had, as `GET .../encryptionKeys` shows it.
#[derive(Debug, Clone)]
pub struct KeyHistoryEntry {
    /// The record.
    pub key: headlock_core::model::MasterKeyRecord,
    /// The key's state as the KMIP server reports it now (None if it could not be asked).
    pub state: Option<headlock_core::keys::KeyState>,
    /// Why the KMIP server could not be asked, when it could not.
    pub state_error: Option<String>,
    /// Data keys the key wraps now.
    pub data_keys: u64,
    /// Snapshots whose data key the key wraps now.
    pub snapshots: u64,
    /// What became of the key after its retirement (destroyed, being destroyed, kept).
    pub fate: Option<headlock_core::model::RetiredKeyRecord>,
    /// When the destruction job may destroy it (retired, grace set, no fate yet).
    pub scheduled_destruction: Option<time::OffsetDateTime>,
}

impl Service {
    /// Every master key a cluster has had, newest first, with its KMIP state and what it
    /// protects now (after a rotation, nothing for every key but the current one).
    pub async fn key_history(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
    ) -> Result<Vec<KeyHistoryEntry>> {
        let group = self.groups.readable_group(actor, group_id).await?;
        let cluster = self.cluster_in(&group, cluster_id).await?;
        if cluster.is_sharded_whole() {
            return Err(ServiceError::invalid_input(format!(
                "Cluster {} is a whole sharded cluster: ask for the history of each shard and of the config server replica set.",
                cluster.id
            )));
        }
        let keys = self.store.master_keys(cluster.id).await?;
        let data_keys = self.store.data_keys(cluster.id).await?;
        let snapshots = self.store.snapshot_count(cluster.id).await?;
        let fates = self.store.retired_key_fates(cluster.id).await?;
        let grace = self
            .store
            .key_lifecycle(cluster.id)
            .await?
            .retired_key_destroy_after_days;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let fate = fates.iter().find(|f| f.kmip_uid == key.kmip_uid).cloned();
            let scheduled_destruction = match (key.retired, &fate) {
                (Some(retired), None) if grace > 0 => {
                    Some(retired + time::Duration::days(i64::from(grace)))
                }
                _ => None,
            };
            let (state, state_error) = match self.keys.key_state(&key.kmip_uid).await {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let wraps = data_keys
                .iter()
                .filter(|d| d.master_key_uid == key.kmip_uid)
                .count() as u64;
            out.push(KeyHistoryEntry {
                snapshots: if wraps > 0 { snapshots } else { 0 },
                data_keys: wraps,
                state,
                state_error,
                key,
                fate,
                scheduled_destruction,
            });
        }
        Ok(out)
    }
}
