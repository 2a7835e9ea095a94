//! [`KeyStore`]: a cluster's master and data key records, the intents of key changes in
//! flight, and the key change itself ([`KeyChange`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{AuditEvent, BackupConfig, DataKeyRecord, KeyIntent, MasterKeyRecord};
use crate::{KmipUid, ObjectId};

use super::{LeaseRenewal, StoreError};

/// The switch from one master key to the next (or to the first), applied atomically:
/// the lease on the change (if given) must still be the caller's, and is renewed; the
/// previous key (if any) must still be current, and becomes retired at `retired_at`;
/// the new key becomes current; the cluster's data keys are replaced by the given ones
/// (re-wrapped); the intent moves to `Committed`; the audit event is appended.
#[derive(Debug, Clone)]
pub struct KeyChange {
    /// The intent being carried out.
    pub intent_id: ObjectId,
    /// The cluster.
    pub cluster_id: ObjectId,
    /// The key that must be current for the change to apply (None: no key yet).
    pub expected_current: Option<KmipUid>,
    /// The new current key.
    pub new_key: MasterKeyRecord,
    /// When the previous key retires (the caller's clock; the destruction of retired
    /// keys counts its grace period from it).
    pub retired_at: OffsetDateTime,
    /// Every data key of the cluster, wrapped under the new key.
    pub data_keys: Vec<DataKeyRecord>,
    /// The ids of the data keys the change read (and re-wrapped into `data_keys`), or
    /// `None` to replace the cluster's data keys with `data_keys` whatever they are at
    /// the commit. With `Some`, the commit applies to the data keys as they are then: one
    /// read but deleted since (a re-encryption job that ended meanwhile) is not written
    /// back, and one stored but not read refuses the commit (`Precondition`), since it
    /// would be lost.
    pub data_keys_read: Option<Vec<ObjectId>>,
    /// Configs to write in the same transaction (e.g. `encryptionEnabled: true`).
    pub configs: Vec<BackupConfig>,
    /// The audit record.
    pub audit: AuditEvent,
    /// The lease the caller holds on the change (its intent's), renewed in the same
    /// transaction: the change applies only while the lease is the caller's, so no other
    /// node can judge the change abandoned while it commits.
    pub lease: Option<LeaseRenewal>,
}

/// Master keys, data keys, intents and key changes.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The current master key of a cluster.
    async fn current_master_key(
        &self,
        cluster: ObjectId,
    ) -> Result<Option<MasterKeyRecord>, StoreError>;
    /// Every master key a cluster has had, newest first.
    async fn master_keys(&self, cluster: ObjectId) -> Result<Vec<MasterKeyRecord>, StoreError>;
    /// The data keys of a cluster.
    async fn data_keys(&self, cluster: ObjectId) -> Result<Vec<DataKeyRecord>, StoreError>;
    /// Records an intent, if the cluster's current key is still the intent's
    /// `previous_uid` (None: no key yet), checked in the same statement;
    /// `Precondition` if it is not, [`Conflict::KeyChangeInFlight`](super::Conflict::KeyChangeInFlight)
    /// if the cluster already has an intent, `NotFound` if there is no such cluster.
    async fn insert_intent(&self, intent: &KeyIntent) -> Result<(), StoreError>;
    /// Removes an intent (the change is finished or abandoned).
    async fn delete_intent(&self, id: ObjectId) -> Result<(), StoreError>;
    /// Every intent, oldest first (for reconciliation at start).
    async fn intents(&self) -> Result<Vec<KeyIntent>, StoreError>;
    /// Applies a key change atomically (see [`KeyChange`]); `Precondition` if the current
    /// key is not `expected_current`, or the change's lease is no longer the caller's.
    async fn commit_key_change(&self, change: &KeyChange) -> Result<(), StoreError>;
}
