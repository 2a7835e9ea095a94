//! [`GroupStore`]: groups, their clusters and the clusters' backup configs.

use async_trait::async_trait;

use crate::ObjectId;
use crate::model::{AuditEvent, BackupConfig, Cluster, Group, Page};

use super::StoreError;

/// Groups, clusters and backup configs.
#[async_trait]
pub trait GroupStore: Send + Sync {
    // ----- groups
    /// Inserts a group; [`Conflict::GroupName`](super::Conflict::GroupName) if the name is taken.
    async fn insert_group(&self, group: &Group) -> Result<(), StoreError>;
    /// A group by id.
    async fn group(&self, id: ObjectId) -> Result<Option<Group>, StoreError>;
    /// A group by name.
    async fn group_by_name(&self, name: &str) -> Result<Option<Group>, StoreError>;
    /// A page of groups (oldest first) and the total count.
    async fn list_groups(&self, page: Page) -> Result<(Vec<Group>, u64), StoreError>;
    /// Number of top-level clusters of a group (whole clusters and lone replica sets).
    async fn cluster_count(&self, group: ObjectId) -> Result<u64, StoreError>;

    // ----- clusters and backup configs
    /// Inserts cluster records and their backup configs in one transaction;
    /// [`Conflict::ClusterName`](super::Conflict::ClusterName) if a cluster of that name exists in the group.
    async fn insert_clusters(
        &self,
        clusters: &[Cluster],
        configs: &[BackupConfig],
    ) -> Result<(), StoreError>;
    /// A cluster of a group.
    async fn cluster(&self, group: ObjectId, id: ObjectId) -> Result<Option<Cluster>, StoreError>;
    /// Any cluster by id, whatever its group (to tell "other group" from "no such cluster").
    async fn cluster_any_group(&self, id: ObjectId) -> Result<Option<Cluster>, StoreError>;
    /// A page of a group's clusters, optionally only the parts of one sharded cluster.
    async fn list_clusters(
        &self,
        group: ObjectId,
        parent: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<Cluster>, u64), StoreError>;
    /// The parts (shards and config server replica set) of a sharded cluster.
    async fn cluster_parts(&self, parent: ObjectId) -> Result<Vec<Cluster>, StoreError>;
    /// Deletes a cluster, its parts, their configs, keys records and intents.
    async fn delete_cluster(&self, group: ObjectId, id: ObjectId) -> Result<(), StoreError>;
    /// A cluster of a group and its backup config, read together (one round trip where
    /// [`Self::cluster`] and [`Self::backup_config`] take two); None if either is
    /// missing.
    async fn cluster_with_config(
        &self,
        group: ObjectId,
        id: ObjectId,
    ) -> Result<Option<(Cluster, BackupConfig)>, StoreError>;
    /// A cluster's backup config.
    async fn backup_config(
        &self,
        group: ObjectId,
        cluster: ObjectId,
    ) -> Result<Option<BackupConfig>, StoreError>;
    /// A page of a group's backup configs.
    async fn list_backup_configs(
        &self,
        group: ObjectId,
        page: Page,
    ) -> Result<(Vec<BackupConfig>, u64), StoreError>;
    /// Writes configs in one transaction, with an audit event per config when given.
    async fn update_backup_configs(
        &self,
        configs: &[BackupConfig],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
}
