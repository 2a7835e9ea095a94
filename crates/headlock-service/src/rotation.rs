//! Master keys: the first key of a cluster, rotation, and recovery from a crash.
//!
//! A key change is a persisted state machine, typed in `rotation/state.rs` (each state holds what
//! is known in it, and a transition consumes the state it leaves) and stored as one
//! [`KeyIntent`] row per cluster:
//!
//! ```text
//!  (none) --write intent--> Pending --KMIP Create+Activate--> NewKeyActive
//!         --re-wrap data keys, one store transaction--> Committed
//!         --KMIP Revoke old key (Superseded)--> (intent deleted)
//! ```
//!
//! * The intent is written before any KMIP call, and names the new key
//!   (`headlock-<cluster>-<intent>`), so a key created by a call whose answer was lost can
//!   be found again with Locate: it is never leaked silently. NewKeyActive is not
//!   written: the stored intent stays Pending until the commit writes Committed, and a
//!   key made by a change that stopped before its commit is found by that name whether
//!   or not its Create was answered (a NEW_KEY_ACTIVE row, which releases before
//!   December 2026 wrote, is still read and reconciled).
//! * At most one intent exists per cluster (a unique index), which serialises rotations
//!   across service nodes; within one process a per-cluster mutex queues them, and a
//!   node that finds another node's intent waits for it (up to [`KEY_CHANGE_WAIT`],
//!   polling with the back-off of [`CLAIM_BACKOFF`] through `backon`) instead of
//!   refusing. No database lock is held across a KMIP call.
//! * Each intent has a lease ([`crate::lease`]), taken before the intent is written and
//!   renewed while the change runs, last in the commit's own transaction (which applies
//!   only if the lease is still this node's): an intent whose lease lapsed belongs to a
//!   node that died (or gave up for a KMIP outage), and any node may reconcile it.
//! * The commit is conditional on the current key being the one the rotation started
//!   from: a rotation applies to the key it read or not at all.
//! * KMIP Create is never retried blindly: an unanswered Create is reconciled by name.
//! * A key made by a change that never committed (an orphan: Pre-Active when Activate
//!   failed or never ran, else Active) protects nothing: it is destroyed in the KMIP
//!   server, an Active one revoked first (Cessation of Operation). A refusal is recorded
//!   as what it is (in the audit detail, and a `FAILURE` outcome if the key stays
//!   usable), never as success.
//! * [`Service::reconcile`] finishes or undoes whatever intents nobody works on, from the
//!   state read back: a Pending or NewKeyActive intent's key (found by name) is destroyed as above; a
//!   Committed intent's old key is revoked as superseded (as compromised, and its
//!   re-encryption job recorded, for a [`RotationType::Compromise`]: see
//!   [`crate::compromise`]). It runs at start and every 30 s ([`crate::maintenance`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use headlock_core::envelope::{DataKey, WrapContext};
use headlock_core::keys::{CreatedKey, KeyState, KmipUid, RevokeReason};
use headlock_core::model::{
    BackupConfig, Cluster, DataKeyRecord, IntentPhase, KeyIntent, MasterKeyRecord, RotationType,
};
use headlock_core::store::KeyChange;
use headlock_core::{KeyManagerError, ObjectId, StoreConflict, StoreError};
use tokio::sync::OwnedMutexGuard;

use crate::error::{Conflict, Internal};
use crate::lease::LeaseGuard;
use crate::{Actor, Result, Service, ServiceError};

pub(crate) mod state;

use state::{Claim, KeyChangeState, NewKeyActive, Pending};

/// How long a key change waits for another node's change of the same cluster before
/// answering 409 `KEY_CHANGE_IN_PROGRESS`.
pub const KEY_CHANGE_WAIT: Duration = Duration::from_secs(60);

/// How often a key change looks again while another node's change of the cluster is in
/// flight: after 20 ms, doubling up to every 500 ms, until [`KEY_CHANGE_WAIT`] is over.
pub const CLAIM_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(20))
    .with_max_delay(Duration::from_millis(500))
    .with_factor(2.0)
    .without_max_times();

/// Why an attempt to claim a cluster's key-change slot did not get it.
#[derive(Debug)]
enum ClaimFailed {
    /// The claim raced with a change that finished meanwhile: claim again at once.
    Raced,
    /// Another node's change of the cluster is in flight: wait for it.
    Busy,
    /// Anything else: give up with this.
    Error(ServiceError),
}

impl ClaimFailed {
    /// Whether claiming again may succeed.
    fn is_transient(&self) -> bool {
        matches!(self, ClaimFailed::Raced | ClaimFailed::Busy)
    }
}

impl From<ServiceError> for ClaimFailed {
    fn from(e: ServiceError) -> Self {
        ClaimFailed::Error(e)
    }
}

impl From<StoreError> for ClaimFailed {
    fn from(e: StoreError) -> Self {
        ClaimFailed::Error(e.into())
    }
}

/// Which key a key change replaces.
#[derive(Debug, Clone, Copy)]
enum Replace<'a> {
    /// None: this makes the cluster's first key.
    Nothing,
    /// Whichever key is current when the change has claimed the cluster.
    Current,
    /// This key only; if another is current by then, nothing is done.
    Exactly(&'a KmipUid),
}

/// A key change about to commit: its intent and lease, the key it replaces, the new key.
struct ChangeTo<'a> {
    intent: &'a NewKeyActive,
    lease: &'a LeaseGuard,
    current: Option<&'a MasterKeyRecord>,
    created: &'a CreatedKey,
}

/// The lease of a key-change intent.
fn intent_lease(intent: ObjectId) -> String {
    format!("intent:{intent}")
}

/// Audit event type of a rotation (Ops Manager's name).
pub const ROTATE_EVENT: &str = "RS_ROTATE_MASTER_KEY_AUDIT";
/// Audit event type of a cluster's first master key.
pub const ENABLE_EVENT: &str = "BACKUP_ENCRYPTION_ENABLED";

/// One async mutex per cluster, so that rotations of one cluster in one process queue up.
#[derive(Clone, Default)]
pub(crate) struct ClusterLocks(Arc<Mutex<HashMap<ObjectId, Arc<tokio::sync::Mutex<()>>>>>);

impl ClusterLocks {
    pub(crate) async fn lock(&self, cluster: ObjectId) -> OwnedMutexGuard<()> {
        let m = {
            let mut map = self.0.lock().expect("cluster lock map poisoned");
            // Forget locks nobody holds or waits for, so the map does not grow forever.
            if map.len() > 1024 {
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            map.entry(cluster).or_default().clone()
        };
        m.lock_owned().await
    }
}

/// One async read-write lock per cluster: backups share it, garbage collection takes it
/// alone.
#[derive(Clone, Default)]
pub(crate) struct ClusterRwLocks(Arc<Mutex<HashMap<ObjectId, Arc<tokio::sync::RwLock<()>>>>>);

impl ClusterRwLocks {
    fn get(&self, cluster: ObjectId) -> Arc<tokio::sync::RwLock<()>> {
        let mut map = self.0.lock().expect("cluster lock map poisoned");
        if map.len() > 1024 {
            map.retain(|_, m| Arc::strong_count(m) > 1);
        }
        map.entry(cluster).or_default().clone()
    }

    pub(crate) async fn read(&self, cluster: ObjectId) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.get(cluster).read_owned().await
    }

    pub(crate) async fn write(&self, cluster: ObjectId) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.get(cluster).write_owned().await
    }
}

/// What became of a key that a key change created and never committed (an orphan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanFate {
    /// Destroyed in the KMIP server (or already gone from it).
    Destroyed,
    /// Revoked (Deactivated), but the server refused to destroy it: `why`.
    Deactivated {
        /// The refusal.
        why: String,
    },
    /// Left as the server holds it: it refused what would have retired the key.
    Kept {
        /// The key's state, when the server told it.
        state: Option<KeyState>,
        /// The refusal.
        why: String,
    },
}

/// An orphan key and its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanKey {
    /// Its KMIP uid.
    pub uid: KmipUid,
    /// The state it was found in (None: the server no longer had it).
    pub found: Option<KeyState>,
    /// What became of it.
    pub fate: OrphanFate,
}

impl OrphanKey {
    /// Whether the key can no longer be used: destroyed, or at least deactivated.
    pub fn is_retired(&self) -> bool {
        matches!(
            self.fate,
            OrphanFate::Destroyed | OrphanFate::Deactivated { .. }
        )
    }
}

impl std::fmt::Display for OrphanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key {}", self.uid)?;
        if let Some(found) = self.found {
            write!(f, " (was {})", found.as_str())?;
        }
        match &self.fate {
            OrphanFate::Destroyed => write!(f, " destroyed"),
            OrphanFate::Deactivated { why } => {
                write!(f, " revoked, now Deactivated, not destroyed: {why}")
            }
            OrphanFate::Kept { state, why } => write!(
                f,
                " left {}: {why}",
                state.map_or("in an unknown state", KeyState::as_str)
            ),
        }
    }
}

/// What [`Service::reconcile`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Intents finished or undone.
    pub resolved: usize,
    /// KMIP keys made by key changes that never committed, and what became of them.
    pub orphans: Vec<OrphanKey>,
    /// Old keys revoked after a committed rotation.
    pub superseded_revoked: Vec<KmipUid>,
    /// Intents left for later (the KMIP server could not be reached).
    pub deferred: usize,
}

impl Service {
    /// Makes sure a data-bearing cluster has a current master key and a data key, and that
    /// its config says `encryptionEnabled: true`.
    pub(crate) async fn ensure_encryption(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        kind: RotationType,
    ) -> Result<()> {
        let _guard = self.locks.lock(cluster.id).await;
        let mut config = self.config_of(cluster).await?;
        config.encryption_enabled = true;
        if self.store.current_master_key(cluster.id).await?.is_some() {
            return self.reenable(actor, cluster, &[config]).await;
        }
        self.change_key(actor, cluster, Replace::Nothing, kind, vec![config])
            .await
            .map(|_| ())
    }

    /// Writes `configs` of a cluster that already has a master key, as turning
    /// encryption (back) on with it.
    async fn reenable(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        configs: &[BackupConfig],
    ) -> Result<()> {
        let event = actor.event(
            ENABLE_EVENT,
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some("re-enabled with the existing master key"),
        );
        self.store.update_backup_configs(configs, &[event]).await?;
        self.cache.invalidate_keys();
        Ok(())
    }

    /// Rotates one data-bearing cluster's master key.
    pub(crate) async fn rotate(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        kind: RotationType,
    ) -> Result<()> {
        self.rotate_replacing(actor, cluster, kind, Replace::Current)
            .await
            .map(|_| ())
    }

    /// Rotates the cluster's master key only if `uid` is still the current key when the
    /// rotation has claimed the cluster: `Ok(false)` if another rotation replaced it
    /// first. For the schedule, which must not rotate twice for one due date.
    pub(crate) async fn rotate_if_current(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        kind: RotationType,
        uid: &KmipUid,
    ) -> Result<bool> {
        self.rotate_replacing(actor, cluster, kind, Replace::Exactly(uid))
            .await
    }

    async fn rotate_replacing(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        kind: RotationType,
        replace: Replace<'_>,
    ) -> Result<bool> {
        let started = std::time::Instant::now();
        let _guard = self.locks.lock(cluster.id).await;
        let outcome = self
            .change_key(actor, cluster, replace, kind, Vec::new())
            .await;
        if !matches!(outcome, Ok(false)) {
            crate::metrics::rotation_finished(kind.as_str(), outcome.is_ok(), started.elapsed());
        }
        outcome
    }

    /// Claims the cluster's one key-change slot across every node: a lease on a fresh
    /// intent, then the intent row (one per cluster, by a unique index). While another
    /// node's key change of the cluster is in flight (its intent's lease is live) this
    /// waits for it, up to [`KEY_CHANGE_WAIT`]; an intent nobody is working on (its node
    /// died, or this node left it for a KMIP outage) is reconciled first. Returns the
    /// intent, its lease and the current key, which the store checked was still current
    /// when it recorded the intent (a change committed by another node meanwhile makes
    /// the claim start over from that node's key). The caller holds the cluster's
    /// in-process lock.
    async fn claim_key_change(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        kind: RotationType,
    ) -> Result<(Pending, LeaseGuard, Option<MasterKeyRecord>)> {
        let deadline = tokio::time::Instant::now() + KEY_CHANGE_WAIT;
        (|| self.try_claim_key_change(actor, cluster, kind))
            .retry(CLAIM_BACKOFF)
            .when(ClaimFailed::is_transient)
            .adjust(|failed, pause| match failed {
                ClaimFailed::Raced => Some(Duration::ZERO),
                _ if tokio::time::Instant::now() >= deadline => None,
                _ => pause,
            })
            .await
            .map_err(|failed| match failed {
                ClaimFailed::Error(e) => e,
                ClaimFailed::Raced | ClaimFailed::Busy => {
                    Conflict::KeyChangeInProgress(cluster.id).into()
                }
            })
    }

    /// One attempt of [`Self::claim_key_change`].
    async fn try_claim_key_change(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        kind: RotationType,
    ) -> Result<(Pending, LeaseGuard, Option<MasterKeyRecord>), ClaimFailed> {
        let current = self.store.current_master_key(cluster.id).await?;
        let intent_id = ObjectId::new();
        let intent = Pending::new(Claim {
            id: intent_id,
            cluster_id: cluster.id,
            key_name: format!("headlock-{}-{}", cluster.id, intent_id),
            previous_uid: current.as_ref().map(|k| k.kmip_uid.clone()),
            rotation_type: kind,
            requested_by: actor.username.clone(),
            created: crate::now(),
        });
        // The lease comes first, so no node ever sees this intent without it.
        let lease = self
            .try_lease(intent_lease(intent.id))
            .await?
            .ok_or_else(|| ServiceError::unexpected("a fresh intent's lease was taken".into()))?;
        // Inserted only if the key read above is still current (one statement).
        match self.store.insert_intent(&intent.record()).await {
            Ok(()) => return Ok((intent, lease, current)),
            // Another node committed between the read and the claim: start over from
            // its key.
            Err(StoreError::Precondition(_)) => return Err(ClaimFailed::Raced),
            Err(StoreError::Conflict(StoreConflict::KeyChangeInFlight)) => drop(lease),
            Err(e) => return Err(e.into()),
        }
        let Some(other) = self
            .store
            .intents()
            .await?
            .into_iter()
            .find(|i| i.cluster_id == cluster.id)
        else {
            return Err(ClaimFailed::Raced); // finished meanwhile
        };
        match self.try_lease(intent_lease(other.id)).await? {
            // Nobody is working on it: finish or undo it, then claim again.
            Some(_taken) => {
                let mut report = ReconcileReport::default();
                self.reconcile_record(other, &mut report).await;
                if report.resolved == 0 {
                    // The KMIP server is still out of reach: nothing can change.
                    return Err(ClaimFailed::Error(
                        Conflict::KeyChangeInProgress(cluster.id).into(),
                    ));
                }
                Err(ClaimFailed::Raced)
            }
            // Another node is changing this cluster's key: wait for it.
            None => Err(ClaimFailed::Busy),
        }
    }

    /// The state machine of the module docs. The caller holds the cluster's lock.
    /// `replace` says which key the change replaces; `Ok(false)` when it found another
    /// key current (see [`Replace::Exactly`]) and changed nothing.
    async fn change_key(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        replace: Replace<'_>,
        kind: RotationType,
        configs: Vec<BackupConfig>,
    ) -> Result<bool> {
        let (intent, lease, current) = self.claim_key_change(actor, cluster, kind).await?;
        match (&current, replace) {
            (Some(_), Replace::Nothing) => {
                // Another node made the first key meanwhile: only the configs remain.
                self.store.delete_intent(intent.id).await?;
                self.reenable(actor, cluster, &configs).await?;
                return Ok(true);
            }
            (None, Replace::Current | Replace::Exactly(_)) => {
                self.store.delete_intent(intent.id).await?;
                return Err(Conflict::EncryptionDisabledRotate(cluster.id).into());
            }
            (Some(key), Replace::Exactly(uid)) if &key.kmip_uid != uid => {
                // Rotated meanwhile (a PUT, another node's schedule): nothing is due.
                self.store.delete_intent(intent.id).await?;
                return Ok(false);
            }
            _ => {}
        }

        // The key replaced comes with the new one where the server allows: the re-wrap
        // needs it.
        let previous = current.as_ref().map(|k| &k.kmip_uid);
        let created = match self
            .keys
            .create_master_key(&intent.key_name, previous)
            .await
        {
            Ok(created) => created,
            Err(e) => {
                let fates = if matches!(e, KeyManagerError::Unavailable { .. }) {
                    // No server was reached: nothing was created. Forget the intent.
                    self.store.delete_intent(intent.id).await?;
                    String::new()
                } else {
                    // The key may exist: Create unanswered, or Create done and Activate
                    // refused or unanswered (a Pre-Active key). Find it by name and
                    // destroy it, or leave the intent for reconciliation.
                    self.abandon_or_defer(&intent, None).await
                };
                self.audit_failure(actor, cluster, &intent, None, &format!("{e}{fates}"))
                    .await;
                return Err(e.into());
            }
        };
        // The stored intent stays Pending until the commit: a crash from here on leaves
        // a key that reconciliation finds by its name, as after an unanswered Create.
        let intent = intent.key_active(created.uid.clone());
        if current.is_some() {
            crate::test_hooks::crash_point("rotation-after-kmip-create");
        }
        let change = ChangeTo {
            intent: &intent,
            lease: &lease,
            current: current.as_ref(),
            created: &created,
        };
        if let Err(e) = self
            .rewrap_and_commit(actor, cluster, change, configs)
            .await
        {
            let new_uid = Some(intent.new_uid());
            let fates = self.abandon_or_defer(&intent, new_uid).await;
            self.audit_failure(actor, cluster, &intent, new_uid, &format!("{e}{fates}"))
                .await;
            return Err(match e {
                ServiceError::Internal(Internal::Store(StoreError::Precondition(_))) => {
                    Conflict::KeyChangeInProgress(cluster.id).into()
                }
                e => e,
            });
        }
        let intent = intent.committed();

        // A compromise: the job that rewrites the snapshots under the new data key is
        // recorded before the intent goes (reconciliation records it otherwise).
        if intent.rotation_type == RotationType::Compromise
            && let Err(e) = self.ensure_reencryption_job(&actor.username, cluster).await
        {
            tracing::warn!(
                cluster = %cluster.id, error = %e,
                "compromise rotation committed but its re-encryption job could not be recorded yet; reconciliation will"
            );
            return Ok(true);
        }
        // Committed: the old key protects nothing any more.
        if let Some(old) = &current {
            crate::test_hooks::crash_point("rotation-after-commit");
            if let Err(e) = self
                .keys
                .revoke(&old.kmip_uid, revoke_reason(intent.rotation_type))
                .await
            {
                tracing::warn!(
                    cluster = %cluster.id, key = %old.kmip_uid, error = %e,
                    "rotation committed but the old master key could not be revoked yet; reconciliation will retry"
                );
                return Ok(true);
            }
        }
        self.store.delete_intent(intent.id).await?;
        Ok(true)
    }

    /// Re-wraps every data key of the cluster under the new key (or makes the first data
    /// key) and commits the switch in one store transaction.
    async fn rewrap_and_commit(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        change: ChangeTo<'_>,
        configs: Vec<BackupConfig>,
    ) -> Result<()> {
        let ChangeTo {
            intent,
            lease,
            current,
            created,
        } = change;
        let cluster_id = cluster.id.to_string();
        let new_material = &created.material;
        let new_ctx = WrapContext {
            cluster_id: &cluster_id,
            master_key_uid: created.uid.as_str(),
        };
        // The service's clock (see crate::clock): a key's creation anchors its rotation
        // schedule, so it must be in the same frame as the schedule's "now".
        let now = self.clock.now();
        let mut data_keys = Vec::new();
        let existing = self.store.data_keys(cluster.id).await?;
        // What the commit checks the stored data keys against (see `KeyChange`).
        let data_keys_read: Vec<ObjectId> = existing.iter().map(|dk| dk.id).collect();
        // A first key gets the cluster's first data key. A compromise gets a new one too,
        // since the stored data keys may have leaked: it is the newest, so new backups
        // use it, and a re-encryption job moves every snapshot to it.
        let new_data_key = existing.is_empty() || intent.rotation_type == RotationType::Compromise;
        // Normally every data key is wrapped by the current key, whose material came
        // with the new key's; fetch whatever others are named, once each.
        let came_with_new = match (current, &created.previous) {
            (Some(current), Some(material)) => Some((&current.kmip_uid, material)),
            _ => None,
        };
        let mut fetched = HashMap::new();
        for dk in existing {
            let old_material = match came_with_new {
                Some((uid, material)) if *uid == dk.master_key_uid => material,
                _ => {
                    if !fetched.contains_key(&dk.master_key_uid) {
                        let m = self.keys.master_key_material(&dk.master_key_uid).await?;
                        fetched.insert(dk.master_key_uid.clone(), m);
                    }
                    &fetched[&dk.master_key_uid]
                }
            };
            let old_ctx = WrapContext {
                cluster_id: &cluster_id,
                master_key_uid: dk.master_key_uid.as_str(),
            };
            let wrapped = DataKey::rewrap(
                &dk.wrapped,
                (old_material, &old_ctx),
                (new_material, &new_ctx),
            )
            .map_err(|e| {
                ServiceError::unexpected(format!(
                    "data key {} of cluster {} did not unwrap under master key {}: {e}",
                    dk.id, cluster.id, dk.master_key_uid
                ))
            })?;
            data_keys.push(DataKeyRecord {
                wrapped,
                master_key_uid: created.uid.clone(),
                ..dk
            });
        }
        if new_data_key {
            let key = DataKey::generate().map_err(|e| ServiceError::unexpected(e.to_string()))?;
            data_keys.push(DataKeyRecord {
                id: ObjectId::new(),
                cluster_id: cluster.id,
                wrapped: key
                    .wrap(new_material, &new_ctx)
                    .map_err(|e| ServiceError::unexpected(e.to_string()))?,
                master_key_uid: created.uid.clone(),
                created: now,
            });
        }
        let mut audit = actor.event(
            if current.is_some() {
                ROTATE_EVENT
            } else {
                ENABLE_EVENT
            },
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&format!(
                "{} master key rotation; KMIP: {}",
                intent.rotation_type, created.server
            )),
        );
        audit.old_key_uid = current.map(|k| k.kmip_uid.clone());
        audit.new_key_uid = Some(created.uid.clone());
        let change = KeyChange {
            intent_id: intent.id,
            cluster_id: cluster.id,
            expected_current: current.map(|k| k.kmip_uid.clone()),
            new_key: MasterKeyRecord {
                cluster_id: cluster.id,
                kmip_uid: created.uid.clone(),
                kmip_server: created.server.clone(),
                kmip_name: intent.key_name.clone(),
                created: now,
                retired: None,
                rotation_type: intent.rotation_type,
                requested_by: actor.username.clone(),
            },
            retired_at: now,
            data_keys,
            data_keys_read: Some(data_keys_read),
            configs,
            audit,
            // Renewed in the commit's own transaction, the intent's lease outlives the
            // commit: no other node can judge the intent abandoned (and revoke the new
            // key) while it commits, and a lease lost meanwhile makes the commit fail.
            lease: Some(lease.renewal().ok_or_else(|| {
                ServiceError::unexpected(
                    "this key change's lease lapsed (the metadata store was out of reach too long)"
                        .into(),
                )
            })?),
        };
        self.store.commit_key_change(&change).await?;
        self.cache.invalidate_keys();
        Ok(())
    }

    /// Undoes an uncommitted key change (Pending, or NewKeyActive with `new_uid`): every
    /// key it made (found by uid or by name) is disposed of ([`Self::dispose_orphan`]),
    /// then the intent is deleted. If the KMIP server or the store cannot be reached, or
    /// the stored intent turns out committed after all (a commit whose answer was lost),
    /// the intent stays for [`Service::reconcile`]. Returns the orphans' fates, or None
    /// if deferred.
    async fn abandon(&self, intent: &Claim, new_uid: Option<&KmipUid>) -> Option<Vec<OrphanKey>> {
        // A key is destroyed only if the store's intent says no commit used it.
        match self.store.intents().await {
            Ok(rows) => match rows.iter().find(|r| r.id == intent.id) {
                Some(row) if row.phase != IntentPhase::Committed => {}
                Some(_) => {
                    tracing::warn!(intent = %intent.id, "the key change committed after all; reconciliation will finish it");
                    return None;
                }
                None => {
                    tracing::warn!(intent = %intent.id, "the key change's intent is gone; its keys are left alone");
                    return None;
                }
            },
            Err(e) => {
                tracing::warn!(intent = %intent.id, error = %e, "cannot read back an abandoned key change yet");
                return None;
            }
        }
        let mut uids = match self.keys.locate_by_name(&intent.key_name).await {
            Ok(uids) => uids,
            Err(e) => {
                tracing::warn!(intent = %intent.id, error = %e, "cannot look up an abandoned master key yet");
                // Without the uid there is nothing else to go on: try again later.
                vec![new_uid?.clone()]
            }
        };
        if let Some(uid) = new_uid
            && !uids.iter().any(|u| u == uid)
        {
            uids.push(uid.clone());
        }
        let mut orphans = Vec::with_capacity(uids.len());
        for uid in &uids {
            match self.dispose_orphan(uid).await {
                Ok(orphan) => {
                    if !orphan.is_retired() {
                        tracing::error!(intent = %intent.id, "an abandoned master key could not be retired: {orphan}");
                    }
                    orphans.push(orphan);
                }
                Err(e) => {
                    tracing::warn!(intent = %intent.id, key = %uid, error = %e, "cannot dispose of an abandoned master key yet");
                    return None;
                }
            }
        }
        if let Err(e) = self.store.delete_intent(intent.id).await {
            tracing::error!(intent = %intent.id, error = %e, "cannot delete a finished key intent");
            return None;
        }
        Some(orphans)
    }

    /// Retires a key that an uncommitted key change made, which nothing references: a
    /// Pre-Active (never activated), Deactivated or Compromised key is destroyed (KMIP
    /// allows Destroy in those states); an Active one is revoked (Cessation of Operation,
    /// which KMIP allows only for an Active key) and then destroyed. A key already
    /// destroyed, or unknown to the server (PyKMIP forgets destroyed objects), counts as
    /// destroyed. A refusal is reported as such in the [`OrphanKey`], never as success;
    /// `Err` when the server could not be reached or did not answer (try again later).
    async fn dispose_orphan(&self, uid: &KmipUid) -> Result<OrphanKey, KeyManagerError> {
        let orphan = |found, fate| OrphanKey {
            uid: uid.clone(),
            found,
            fate,
        };
        let found = match self.keys.key_state(uid).await {
            Ok(state) => state,
            Err(e) if e.is_item_not_found() => return Ok(orphan(None, OrphanFate::Destroyed)),
            Err(e) if answer_lost(&e) => return Err(e),
            Err(e) => {
                let why = format!("Get Attributes failed: {e}");
                return Ok(orphan(None, OrphanFate::Kept { state: None, why }));
            }
        };
        let mut state = found;
        if state == KeyState::Active {
            match self.keys.revoke(uid, RevokeReason::Abandoned).await {
                Ok(()) => state = KeyState::Deactivated,
                Err(e) if answer_lost(&e) => return Err(e),
                Err(e) => {
                    let why = format!("Revoke refused: {e}");
                    return Ok(orphan(
                        Some(found),
                        OrphanFate::Kept {
                            state: Some(state),
                            why,
                        },
                    ));
                }
            }
        }
        if matches!(state, KeyState::Destroyed | KeyState::DestroyedCompromised) {
            return Ok(orphan(Some(found), OrphanFate::Destroyed));
        }
        let fate = match self.keys.destroy(uid).await {
            Ok(()) => OrphanFate::Destroyed,
            Err(e) if e.is_item_not_found() => OrphanFate::Destroyed,
            Err(e) if answer_lost(&e) => return Err(e),
            Err(e) if state == KeyState::Deactivated => OrphanFate::Deactivated {
                why: format!("Destroy refused: {e}"),
            },
            Err(e) => OrphanFate::Kept {
                state: Some(state),
                why: format!("Destroy refused: {e}"),
            },
        };
        Ok(orphan(Some(found), fate))
    }

    /// [`Self::abandon`]; if the KMIP server cannot be reached the intent stays, and
    /// since its lease goes with this call, the next key change of the cluster (on any
    /// node) or the periodic reconciliation finishes it.
    /// Returns what to add to the failure's audit detail: each orphan's fate, or that
    /// reconciliation will see to them.
    async fn abandon_or_defer(&self, intent: &Claim, new_uid: Option<&KmipUid>) -> String {
        match self.abandon(intent, new_uid).await {
            Some(orphans) if orphans.is_empty() => String::new(),
            Some(orphans) => {
                let fates: Vec<String> = orphans.iter().map(OrphanKey::to_string).collect();
                format!("; {}", fates.join("; "))
            }
            None => {
                tracing::warn!(intent = %intent.id, cluster = %intent.cluster_id, "key change left for reconciliation");
                "; any key it made is left for reconciliation".to_string()
            }
        }
    }

    async fn audit_failure(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        intent: &Claim,
        new_uid: Option<&KmipUid>,
        why: &str,
    ) {
        let mut event = actor.event(
            if intent.previous_uid.is_some() {
                ROTATE_EVENT
            } else {
                ENABLE_EVENT
            },
            Some(cluster.group_id),
            Some(cluster.id),
            "FAILURE",
            Some(why),
        );
        event.old_key_uid = intent.previous_uid.clone();
        event.new_key_uid = new_uid.cloned();
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, "cannot record a failed key change in the audit trail");
        }
    }

    /// Finishes or undoes every intent nobody is working on: those a crash left (this
    /// node's previous life, or a node that died: their leases lapsed) and those left for
    /// a KMIP outage. Run at start, before serving, and periodically
    /// ([`crate::maintenance`]). Intents whose lease another node holds are in flight
    /// there and are left alone.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        for intent in self.store.intents().await? {
            let _guard = self.locks.lock(intent.cluster_id).await;
            let Some(_lease) = self.try_lease(intent_lease(intent.id)).await? else {
                continue;
            };
            // Under both locks: still there (this node's own change may have just
            // finished it)?
            let still = self.store.intents().await?;
            if let Some(intent) = still.into_iter().find(|i| i.id == intent.id) {
                self.reconcile_record(intent, &mut report).await;
            }
        }
        Ok(report)
    }

    /// [`Self::reconcile_one`] from the store's row. A row no transition writes is left
    /// alone (and counted as deferred): guessing its state could revoke a current key.
    async fn reconcile_record(&self, intent: KeyIntent, report: &mut ReconcileReport) {
        match KeyChangeState::try_from(intent) {
            Ok(state) => self.reconcile_one(&state, report).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot reconcile a key intent; repair it by hand");
                report.deferred += 1;
            }
        }
    }

    /// Finishes or undoes one key change from the state it was left in.
    async fn reconcile_one(&self, state: &KeyChangeState, report: &mut ReconcileReport) {
        let intent = state.claim();
        let mut new_uid = state.new_uid().cloned();
        let outcome = match state {
            KeyChangeState::Pending(_) | KeyChangeState::NewKeyActive(_) => {
                match self.abandon(intent, state.new_uid()).await {
                    Some(orphans) => {
                        let detail = orphans_detail(&orphans);
                        let retired = orphans.iter().all(OrphanKey::is_retired);
                        // The event names the new key even when the intent did not yet.
                        if let [one] = orphans.as_slice() {
                            new_uid = Some(one.uid.clone());
                        }
                        report.orphans.extend(orphans);
                        Some((detail, retired))
                    }
                    None => None,
                }
            }
            KeyChangeState::Committed(_) => {
                let job = if intent.rotation_type == RotationType::Compromise {
                    let cluster = self.store.cluster_any_group(intent.cluster_id).await;
                    match cluster {
                        Ok(Some(cluster)) => self
                            .ensure_reencryption_job(&intent.requested_by, &cluster)
                            .await
                            .map(|_| ()),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e.into()),
                    }
                } else {
                    Ok(())
                };
                if let Err(e) = &job {
                    tracing::warn!(intent = %intent.id, error = %e, "cannot record the re-encryption job of a compromise yet");
                }
                let reason = revoke_reason(intent.rotation_type);
                let revoked = job.is_ok()
                    && match &intent.previous_uid {
                        Some(old) => match self.keys.revoke(old, reason).await {
                            Ok(()) | Err(KeyManagerError::Refused { .. }) => {
                                report.superseded_revoked.push(old.clone());
                                true
                            }
                            Err(e) => {
                                tracing::warn!(intent = %intent.id, error = %e, "cannot revoke a superseded master key yet");
                                false
                            }
                        },
                        None => true,
                    };
                if revoked && self.store.delete_intent(intent.id).await.is_ok() {
                    let detail = "rotation committed before a restart; old master key revoked";
                    Some((detail.to_string(), true))
                } else {
                    None
                }
            }
        };
        match outcome {
            Some((detail, success)) => {
                report.resolved += 1;
                let group = match self.store.cluster_any_group(intent.cluster_id).await {
                    Ok(c) => c.map(|c| c.group_id),
                    Err(_) => None,
                };
                let mut event = crate::audit_event(
                    "MASTER_KEY_RECONCILED",
                    group,
                    Some(intent.cluster_id),
                    Some("headlock"),
                    None,
                    if success { "SUCCESS" } else { "FAILURE" },
                    Some(&detail),
                );
                event.old_key_uid = intent.previous_uid.clone();
                event.new_key_uid = new_uid;
                if let Err(e) = self.store.append_audit(&event).await {
                    tracing::error!(error = %e, "cannot record a reconciliation in the audit trail");
                }
                tracing::info!(cluster = %intent.cluster_id, intent = %intent.id, "{detail}");
            }
            None => report.deferred += 1,
        }
    }
}

/// Whether a key manager call failed without a usable answer (no server reached, or no
/// answer): worth trying again later, unlike a refusal.
fn answer_lost(e: &KeyManagerError) -> bool {
    matches!(
        e,
        KeyManagerError::Unavailable { .. } | KeyManagerError::Indeterminate { .. }
    )
}

/// The `MASTER_KEY_RECONCILED` detail of an undone key change: what became of each key
/// it made.
fn orphans_detail(orphans: &[OrphanKey]) -> String {
    let mut detail = String::from("key change interrupted before commit; ");
    if orphans.is_empty() {
        detail.push_str("no key had been created");
    } else {
        let fates: Vec<String> = orphans.iter().map(OrphanKey::to_string).collect();
        detail.push_str(&fates.join("; "));
    }
    detail
}

/// How a rotation's old key is revoked: as compromised after a compromise, else as
/// superseded.
fn revoke_reason(kind: RotationType) -> RevokeReason {
    match kind {
        RotationType::Compromise => RevokeReason::Compromised,
        _ => RevokeReason::Superseded,
    }
}
