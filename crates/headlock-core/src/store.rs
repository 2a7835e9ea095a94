//! [`MetadataStore`]: the records the service keeps, as one trait.
//!
//! `headlock-store` implements it on SQL (SQLite by default). Every method is one
//! transaction; the methods that change keys take everything that must change together,
//! so that no crash can leave a cluster half-rotated.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ObjectId;
use crate::model::{
    AuditEvent, BackupConfig, ChunkId, ChunkLocation, Cluster, DataKeyRecord, Group, KeyIntent,
    MasterKeyRecord, Page, RestoreJob, SnapshotRecord, User,
};
use crate::model::{
    DestructionClaim, KeyLifecycleSettings, KeyStateError, RetiredKeyFate, RetiredKeyRecord,
};
use crate::model::{ReencryptionJob, ReencryptionStatus};

/// Store failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule would be broken (same group name, a second intent for a cluster,...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conditional change found the record changed underneath it (e.g. the current master
    /// key is no longer the one the rotation started from).
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// The record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The audit chain does not verify.
    #[error("audit chain broken at event {0}")]
    AuditChainBroken(String),
    /// The database failed (connection, disk, corruption). The text is for the log.
    #[error("database error: {0}")]
    Backend(String),
}

/// The switch from one master key to the next (or to the first), applied atomically:
/// the previous key (if any) must still be current, and becomes retired; the new key
/// becomes current; the cluster's data keys are replaced by the given ones (re-wrapped);
/// the intent moves to `Committed`; the audit event is appended.
#[derive(Debug, Clone)]
pub struct KeyChange {
    /// The intent being carried out.
    pub intent_id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The key that must be current for the change to apply (None: no key yet).
    pub expected_current: Option<String>,
    /// The new current key.
    pub new_key: MasterKeyRecord,
    /// Every data key of the cluster, wrapped under the new key.
    pub data_keys: Vec<DataKeyRecord>,
    /// Configs to write in the same transaction (e.g. `encryptionEnabled: true`).
    pub configs: Vec<BackupConfig>,
    /// The audit record.
    pub audit: AuditEvent,
}

/// A finished backup, recorded in one transaction: the new chunks' locations, every
/// chunk the snapshot uses, and the snapshot itself (complete).
#[derive(Debug, Clone)]
pub struct SnapshotCommit {
    /// The snapshot.
    pub snapshot: SnapshotRecord,
    /// Chunks stored by this backup.
    pub new_chunks: Vec<ChunkLocation>,
    /// Every distinct chunk the snapshot uses (new and reused).
    pub uses: Vec<ChunkId>,
}

/// One snapshot switched to a new data key by a re-encryption job, in one transaction:
/// the snapshot must still be under `from_data_key_id`; its chunk references are
/// replaced by `uses` (the chunks under the new key, `new_chunks` among them), its
/// `data_key_id` becomes `to_data_key_id`, and the job counts one snapshot and `bytes`
/// more. The chunks under the old key it no longer uses become garbage.
#[derive(Debug, Clone)]
pub struct ReencryptCommit {
    /// The job.
    pub job_id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The snapshot.
    pub snapshot_id: ObjectId,
    /// The data key the snapshot must be under now.
    pub from_data_key_id: ObjectId,
    /// The data key it is under after the switch.
    pub to_data_key_id: ObjectId,
    /// Chunks stored by this rewrite (`stored_by` is the snapshot).
    pub new_chunks: Vec<ChunkLocation>,
    /// Every distinct chunk the rewritten snapshot uses.
    pub uses: Vec<ChunkId>,
    /// Plaintext bytes of the snapshot, added to the job's `bytes_done`.
    pub bytes: u64,
}

/// The end of a re-encryption job, in one transaction: the job's status (and, when
/// finished, totals set to what was done), the audit events, and for a finished job the
/// deletion of every data key of the cluster but `keep_data_key_id`.
#[derive(Debug, Clone)]
pub struct ReencryptFinish {
    /// The job.
    pub job_id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// `Finished` or `Failed`.
    pub status: ReencryptionStatus,
    /// When.
    pub finished: OffsetDateTime,
    /// For `Finished`: the one data key left. `Precondition` if a snapshot of the cluster
    /// is under another key, or if this key does not exist.
    pub keep_data_key_id: Option<ObjectId>,
    /// Why it failed.
    pub error: Option<String>,
    /// Audit events (`DATA_KEY_DESTROYED`, the job's end).
    pub audit: Vec<AuditEvent>,
}

/// Persistence for the service.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    // ----- groups
    /// Inserts a group; `Conflict` if the name is taken.
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
    /// `Conflict` if a cluster of that name exists in the group.
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

    // ----- keys
    /// The current master key of a cluster.
    async fn current_master_key(
        &self,
        cluster: ObjectId,
    ) -> Result<Option<MasterKeyRecord>, StoreError>;
    /// Every master key a cluster has had, newest first.
    async fn master_keys(&self, cluster: ObjectId) -> Result<Vec<MasterKeyRecord>, StoreError>;
    /// The data keys of a cluster.
    async fn data_keys(&self, cluster: ObjectId) -> Result<Vec<DataKeyRecord>, StoreError>;
    /// Records an intent; `Conflict` if the cluster already has one (a key change is in flight).
    async fn insert_intent(&self, intent: &KeyIntent) -> Result<(), StoreError>;
    /// Updates an intent's phase and new uid.
    async fn update_intent(&self, intent: &KeyIntent) -> Result<(), StoreError>;
    /// Removes an intent (the change is finished or abandoned).
    async fn delete_intent(&self, id: ObjectId) -> Result<(), StoreError>;
    /// Every intent, oldest first (for reconciliation at start).
    async fn intents(&self) -> Result<Vec<KeyIntent>, StoreError>;
    /// Applies a key change atomically (see [`KeyChange`]); `Precondition` if the current
    /// key is not `expected_current`.
    async fn commit_key_change(&self, change: &KeyChange) -> Result<(), StoreError>;

    // ----- snapshots
    /// Every chunk id stored for a cluster (the deduplication set).
    async fn chunk_ids(&self, cluster: ObjectId) -> Result<Vec<ChunkId>, StoreError>;
    /// The locations of every chunk a snapshot uses.
    async fn snapshot_chunks(&self, snapshot: ObjectId) -> Result<Vec<ChunkLocation>, StoreError>;
    /// Records a finished backup (see [`SnapshotCommit`]); `Conflict` if a new chunk is
    /// already recorded for the cluster.
    async fn commit_snapshot(&self, commit: &SnapshotCommit) -> Result<(), StoreError>;
    /// A snapshot of a cluster.
    async fn snapshot(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<SnapshotRecord>, StoreError>;
    /// A page of a cluster's snapshots, newest first.
    async fn list_snapshots(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<SnapshotRecord>, u64), StoreError>;
    /// Number of snapshots of a cluster.
    async fn snapshot_count(&self, cluster: ObjectId) -> Result<u64, StoreError>;
    /// Writes `expires` and `do_not_delete` of a snapshot.
    async fn update_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError>;
    /// Deletes a snapshot and its chunk references (not the chunks).
    async fn delete_snapshot(&self, cluster: ObjectId, id: ObjectId) -> Result<(), StoreError>;
    /// Deletes the cluster's chunks that no snapshot uses and returns the ids of the packs
    /// that no chunk is left in (the caller deletes those objects).
    async fn collect_garbage(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError>;
    /// Ids of every pack that holds at least one recorded chunk of the cluster.
    async fn packs_in_use(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError>;

    // ----- restore jobs
    /// Records a restore job.
    async fn insert_restore_job(&self, job: &RestoreJob) -> Result<(), StoreError>;
    /// A restore job of a cluster.
    async fn restore_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<RestoreJob>, StoreError>;
    /// A page of a cluster's restore jobs, newest first.
    async fn list_restore_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<RestoreJob>, u64), StoreError>;
    /// Counts one download of a job, atomically, if it has downloads left; the job (after
    /// counting) or None if it has none left. Expiry is the caller's check.
    async fn take_restore_download(&self, id: ObjectId) -> Result<Option<RestoreJob>, StoreError>;

    // ----- re-encryption jobs (compromise recovery)
    /// Records a running job with its audit event; `Conflict` if the cluster already has
    /// a running job.
    async fn insert_reencryption_job(
        &self,
        job: &ReencryptionJob,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// A re-encryption job of a cluster.
    async fn reencryption_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<ReencryptionJob>, StoreError>;
    /// A page of a cluster's re-encryption jobs, newest first.
    async fn list_reencryption_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<ReencryptionJob>, u64), StoreError>;
    /// Every running re-encryption job, oldest first (for resumption on any node).
    async fn running_reencryption_jobs(&self) -> Result<Vec<ReencryptionJob>, StoreError>;
    /// Switches one snapshot to the new data key (see [`ReencryptCommit`]);
    /// `Precondition` if the snapshot is gone or not under `from_data_key_id`, or if a
    /// reused chunk is gone; `Conflict` if a new chunk is already stored.
    async fn commit_reencrypted_snapshot(&self, commit: &ReencryptCommit)
    -> Result<(), StoreError>;
    /// Ends a running job (see [`ReencryptFinish`]); `NotFound` if it is not running.
    async fn finish_reencryption_job(&self, finish: &ReencryptFinish) -> Result<(), StoreError>;

    // ----- users
    /// Inserts a user; `Conflict` if the username is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// A user by name.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Every user.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's record (secrets, roles, access list); `NotFound` if absent.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// Deletes a user; `NotFound` if absent.
    async fn delete_user(&self, username: &str) -> Result<(), StoreError>;

    // ----- audit
    /// Appends an event to the hash chain.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// A page of events, newest first, optionally for one group.
    async fn list_audit(
        &self,
        group: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError>;
    /// One event of a group.
    async fn audit_event(
        &self,
        group: ObjectId,
        id: ObjectId,
    ) -> Result<Option<AuditEvent>, StoreError>;
    /// Re-computes the whole chain; the number of events, or `AuditChainBroken`.
    async fn verify_audit_chain(&self) -> Result<u64, StoreError>;

    // ----- several nodes on one database
    /// Answers when the database answers a trivial query (readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Takes, or renews, the lease `name` for `holder` until `now + ttl`, in one
    /// statement: it succeeds (`true`) if nobody holds the lease, if its holder let it
    /// expire (`expires <= now`), or if `holder` already holds it; otherwise `false` and
    /// nothing changes. Two nodes calling at once can never both get `true`.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Gives the lease back if `holder` holds it (no error if it does not).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Leases whose name starts with `prefix` and that have not expired at `now`.
    async fn live_leases(
        &self,
        prefix: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Lease>, StoreError>;
    /// The secret every node shares under `name` (HMAC keys for digest nonces and
    /// restore links): stores `candidate` if there is none yet and returns whichever
    /// value is stored, so every node ends up with the first one written.
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    // ----- key lifecycle (see docs/design.md, "Key lifecycle")
    /// The lifecycle settings of a cluster (both off if never set).
    async fn key_lifecycle(&self, cluster: ObjectId) -> Result<KeyLifecycleSettings, StoreError>;
    /// Writes the lifecycle settings of each `(cluster, settings)` in one transaction,
    /// with the audit events; `NotFound` if a cluster does not exist.
    async fn set_key_lifecycles(
        &self,
        settings: &[(ObjectId, KeyLifecycleSettings)],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError>;
    /// Every data-bearing cluster (not a whole sharded cluster) whose backup config has
    /// encryption enabled, with its lifecycle settings, in cluster id order.
    async fn encrypted_clusters(&self) -> Result<Vec<(Cluster, KeyLifecycleSettings)>, StoreError>;
    /// Records (or replaces) the key state watch's finding for a cluster's current key;
    /// `true` if it changed what was recorded (a new key or a new message).
    async fn set_key_state_error(&self, error: &KeyStateError) -> Result<bool, StoreError>;
    /// Clears a cluster's key state finding; `true` if there was one.
    async fn clear_key_state_error(&self, cluster: ObjectId) -> Result<bool, StoreError>;
    /// The recorded key state finding of a cluster, whatever key it is about (the caller
    /// compares it with the current key).
    async fn key_state_error(&self, cluster: ObjectId)
    -> Result<Option<KeyStateError>, StoreError>;
    /// The fates recorded for a cluster's retired keys.
    async fn retired_key_fates(
        &self,
        cluster: ObjectId,
    ) -> Result<Vec<RetiredKeyRecord>, StoreError>;
    /// In one transaction: checks that `uid` is a retired key of `cluster` with no fate
    /// yet and that nothing references it (no data key wrapped by it, no snapshot whose
    /// data key it wraps), and if so records it `Destroying` at `now`.
    async fn claim_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &str,
        now: OffsetDateTime,
    ) -> Result<DestructionClaim, StoreError>;
    /// Moves a `Destroying` key to `Destroyed` at `at` (KMIP Destroy done), or back to no
    /// fate (`at` None: the KMIP Destroy failed and is to be tried again).
    async fn finish_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;
    /// Cancels a retired key's destruction for good (`Kept` at `now`): returns the fate
    /// it ends with (`Kept`, or the `Destroying`/`Destroyed` that came first) or
    /// `NotFound` if `uid` is not a retired key of the cluster.
    async fn keep_retired_key(
        &self,
        cluster: ObjectId,
        uid: &str,
        now: OffsetDateTime,
    ) -> Result<RetiredKeyFate, StoreError>;
}

/// A named, time-limited claim of one node on a piece of work (a scheduled job, a
/// backup in progress, an unfinished key-change intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is leased, e.g. `intent:<id>` or `backup:<cluster>:<session>`. ASCII.
    pub name: String,
    /// Who holds it (a node id).
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires: OffsetDateTime,
}
