//! [`KeyLifecycleStore`]: the master key lifecycle (see docs/design.md, "Key lifecycle"):
//! each cluster's rotation and destruction settings, the key state watch's findings,
//! and the fates of retired keys.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    AuditEvent, Cluster, DestructionClaim, KeyLifecycleSettings, KeyStateError, RetiredKeyFate,
    RetiredKeyRecord,
};
use crate::{KmipUid, ObjectId};

use super::StoreError;

/// Lifecycle settings, key state findings and retired keys' fates.
#[async_trait]
pub trait KeyLifecycleStore: Send + Sync {
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
        uid: &KmipUid,
        now: OffsetDateTime,
    ) -> Result<DestructionClaim, StoreError>;
    /// Moves a `Destroying` key to `Destroyed` at `at` (KMIP Destroy done), or back to no
    /// fate (`at` None: the KMIP Destroy failed and is to be tried again).
    async fn finish_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &KmipUid,
        at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;
    /// Cancels a retired key's destruction for good (`Kept` at `now`): returns the fate
    /// it ends with (`Kept`, or the `Destroying`/`Destroyed` that came first) or
    /// `NotFound` if `uid` is not a retired key of the cluster.
    async fn keep_retired_key(
        &self,
        cluster: ObjectId,
        uid: &KmipUid,
        now: OffsetDateTime,
    ) -> Result<RetiredKeyFate, StoreError>;
}
