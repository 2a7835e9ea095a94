//! The master key lifecycle after a key is made: automatic rotation on a schedule, the
//! key state watch, and destruction of retired keys once nothing needs them.
//!
//! ```text
//!            rotation (manual PUT, schedule, compromise recovery)
//!  current ---------------------------------------------------> retired (revoked)
//!     |  watch: not Active / missing in KMIP                       |  retirement + grace <= now,
//!     v                                                            |  nothing references it
//!  current, config in ERROR (backups refused; a rotation clears)   v
//!                                                    DESTROYING --KMIP Destroy--> DESTROYED
//!                       POST .../encryptionKeys/{uid}/restore: KEPT (never destroyed)
//! ```
//!
//! * **Schedule** ([`Service::rotate_due_keys`], lease `job:schedule`): a cluster whose
//!   config has `encryptionKeyRotationPeriodDays` > 0 is due when its current key was
//!   made that many days ago (by the service's [`crate::clock::Clock`]); it is rotated as
//!   `SCHEDULED`, requested by [`SCHEDULER`]. A failure is audited
//!   ([`SCHEDULED_ROTATION_FAILED`]), counted, and tried again after a back-off that
//!   starts at [`RETRY_FIRST`] and doubles up to [`RETRY_MAX`] ([`RETRY_BACKOFF`], the
//!   `backon` policy type every retry of the service uses; the pauses span ticks of the
//!   schedule, so they are state, kept in this node's memory and keyed by the key it
//!   failed to replace, so any rotation resets it).
//! * **Watch** ([`Service::watch_key_states`], lease `job:watch`): every encrypted
//!   cluster's current key must be Active in the KMIP server. Any other state, or Item
//!   Not Found, is recorded in the store as the cluster's key error (so every node shows
//!   it, and backups are refused with `ENCRYPTION_KEY_NOT_ACTIVE`), audited once per
//!   change ([`KEY_STATE_ERROR`]). A KMIP server out of reach is not a key error (the
//!   health endpoint reports that). An error is about one key: once a rotation makes
//!   another key current it no longer counts, and the next watch removes it.
//! * **Destruction** ([`Service::destroy_retired_keys`], lease `job:destroy`): a retired
//!   key of a cluster with `retiredKeyDestroyAfterDays` > 0 whose retirement is that many
//!   days past is claimed in one store transaction that also checks nothing references
//!   it (no data key wrapped by it, no snapshot whose data key it wraps); then KMIP
//!   Destroy; then the record says `Destroyed` ([`KEY_DESTROYED`]). A claimed key whose
//!   Destroy failed is released and tried again; one a crash interrupted is finished by
//!   the next run. A referenced key is never destroyed (the reason is logged).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use headlock_core::ObjectId;
use headlock_core::StoreError;
use headlock_core::keys::{KeyState, KmipUid, RevokeReason};
use headlock_core::model::{
    BackupConfig, Cluster, DestructionClaim, KeyLifecycleSettings, KeyStateError, MasterKeyRecord,
    RetiredKeyFate, RotationType,
};
use time::OffsetDateTime;

use crate::clusters::KeyHistoryEntry;
use crate::error::{Conflict, NotFound};
use crate::{Actor, Result, Service, ServiceError};

/// Who the audit trail names for scheduled rotations.
pub const SCHEDULER: &str = "headlock-scheduler";
/// Who the audit trail names for the watch and destruction.
pub const LIFECYCLE_ACTOR: &str = "headlock";
/// The longest rotation period and destruction grace, in days (ten years).
pub const MAX_DAYS: i64 = 3650;
/// Audit event: a scheduled rotation failed.
pub const SCHEDULED_ROTATION_FAILED: &str = "SCHEDULED_ROTATION_FAILED";
/// Audit event: a cluster's current key was found not Active (or missing).
pub const KEY_STATE_ERROR: &str = "MASTER_KEY_STATE_ERROR";
/// Audit event: a cluster's key error was cleared (its current key is Active).
pub const KEY_STATE_CLEARED: &str = "MASTER_KEY_STATE_ACTIVE";
/// Audit event: a retired key was destroyed in the KMIP server.
pub const KEY_DESTROYED: &str = "MASTER_KEY_DESTROYED";
/// Audit event: a retired key's destruction was cancelled for good.
pub const KEY_DESTROY_CANCELLED: &str = "MASTER_KEY_DESTROY_CANCELLED";
/// First pause after a failed scheduled rotation.
pub const RETRY_FIRST: Duration = Duration::from_secs(60);
/// Longest pause between attempts of a failing scheduled rotation.
pub const RETRY_MAX: Duration = Duration::from_secs(3600);
/// The pauses between attempts of a failing scheduled rotation: [`RETRY_FIRST`],
/// doubling up to [`RETRY_MAX`], for as long as it fails.
pub const RETRY_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(RETRY_FIRST)
    .with_max_delay(RETRY_MAX)
    .with_factor(2.0)
    .without_max_times();
/// Longest key id accepted in a path.
const MAX_UID: usize = 256;

/// What the lifecycle jobs keep in memory: the back-off of failing scheduled rotations.
#[derive(Debug, Default)]
pub(crate) struct LifecycleState {
    retries: Mutex<HashMap<ObjectId, Retry>>,
}

#[derive(Debug)]
struct Retry {
    /// The key the failed rotations tried to replace.
    key: String,
    /// The pauses after the next failures.
    pauses: ExponentialBackoff,
    /// When the next attempt is due.
    at: OffsetDateTime,
}

impl LifecycleState {
    fn retry_at(&self, cluster: ObjectId, key: &str) -> Option<OffsetDateTime> {
        let map = self.retries.lock().expect("retry map poisoned");
        map.get(&cluster).filter(|r| r.key == key).map(|r| r.at)
    }

    /// Records a failure at `now`; when the next attempt is due.
    fn failed(&self, cluster: ObjectId, key: &str, now: OffsetDateTime) -> OffsetDateTime {
        let mut map = self.retries.lock().expect("retry map poisoned");
        let mut retry = match map.remove(&cluster) {
            Some(r) if r.key == key => r,
            _ => Retry {
                key: key.to_string(),
                pauses: RETRY_BACKOFF.build(),
                at: now,
            },
        };
        // Without a limit on attempts the policy never runs out.
        retry.at = now + retry.pauses.next().unwrap_or(RETRY_MAX);
        let at = retry.at;
        map.insert(cluster, retry);
        at
    }

    fn forget(&self, cluster: ObjectId) {
        self.retries
            .lock()
            .expect("retry map poisoned")
            .remove(&cluster);
    }
}

/// A backup config's lifecycle fields, as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLifecycleView {
    /// `encryptionKeyRotationPeriodDays`, `retiredKeyDestroyAfterDays`.
    pub settings: KeyLifecycleSettings,
    /// `lastEncryptionKeyRotation`: when the current key was made (for a whole sharded
    /// cluster, the oldest part's); None without a key.
    pub last_rotation: Option<OffsetDateTime>,
    /// `nextEncryptionKeyRotation`: last + period, or the retry time after a failure;
    /// None when off.
    pub next_rotation: Option<OffsetDateTime>,
    /// Whether the cluster (or any part) has a current key.
    pub has_key: bool,
    /// `encryptionKeyError` (`encryptionKeyStatus` is `ERROR` when set).
    pub key_error: Option<String>,
}

/// What [`Service::rotate_due_keys`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScheduleReport {
    /// Clusters rotated.
    pub rotated: Vec<ObjectId>,
    /// Due clusters whose rotation failed.
    pub failed: Vec<ObjectId>,
}

/// What [`Service::watch_key_states`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchReport {
    /// Clusters whose key was checked.
    pub checked: usize,
    /// Clusters in the key error state after the watch.
    pub in_error: usize,
    /// Clusters whose key state could not be read (KMIP out of reach).
    pub unknown: usize,
}

/// What [`Service::destroy_retired_keys`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DestroyReport {
    /// Keys destroyed.
    pub destroyed: Vec<KmipUid>,
    /// Keys past their grace but still referenced (kept).
    pub referenced: Vec<KmipUid>,
    /// Keys whose KMIP Destroy failed (tried again next time).
    pub failed: Vec<KmipUid>,
}

/// Checks a lifecycle field given through the API: 0 (off) or 1 to [`MAX_DAYS`].
pub fn check_days(field: &str, days: i64) -> Result<u32> {
    if (0..=MAX_DAYS).contains(&days) {
        // In range, so it fits.
        Ok(days as u32)
    } else {
        Err(ServiceError::invalid_input(format!(
            "{field} must be 0 (off) or a whole number of days from 1 to {MAX_DAYS}, not {days}."
        )))
    }
}

fn days(n: u32) -> time::Duration {
    time::Duration::days(i64::from(n))
}

impl Service {
    /// The lifecycle fields of a backup config.
    pub async fn key_lifecycle_view(&self, config: &BackupConfig) -> Result<KeyLifecycleView> {
        let settings = self.store.key_lifecycle(config.cluster_id).await?;
        let cluster = self
            .store
            .cluster(config.group_id, config.cluster_id)
            .await?
            .ok_or(NotFound::BackupConfig {
                cluster: config.cluster_id,
                group: config.group_id,
            })?;
        let parts = if cluster.is_sharded_whole() {
            self.store.cluster_parts(cluster.id).await?
        } else {
            vec![cluster.clone()]
        };
        let mut view = KeyLifecycleView {
            settings,
            last_rotation: None,
            next_rotation: None,
            has_key: false,
            key_error: None,
        };
        for part in &parts {
            let Some(key) = self.store.current_master_key(part.id).await? else {
                continue;
            };
            view.has_key = true;
            view.last_rotation = Some(match view.last_rotation {
                Some(t) => t.min(key.created),
                None => key.created,
            });
            let part_settings = if part.id == cluster.id {
                settings
            } else {
                self.store.key_lifecycle(part.id).await?
            };
            if config.encryption_enabled
                && let Some(next) = self.next_rotation(part.id, &key, part_settings)
            {
                view.next_rotation = Some(view.next_rotation.map_or(next, |t| t.min(next)));
            }
            if view.key_error.is_none()
                && let Some(e) = self.store.key_state_error(part.id).await?
                && e.kmip_uid == key.kmip_uid
            {
                view.key_error = Some(e.message);
            }
        }
        Ok(view)
    }

    /// When the cluster's key is due for a scheduled rotation: the retry time after a
    /// failure, else its creation plus the period; None when the schedule is off.
    fn next_rotation(
        &self,
        cluster: ObjectId,
        key: &MasterKeyRecord,
        settings: KeyLifecycleSettings,
    ) -> Option<OffsetDateTime> {
        if settings.rotation_period_days == 0 {
            return None;
        }
        self.lifecycle
            .retry_at(cluster, key.kmip_uid.as_str())
            .or(Some(key.created + days(settings.rotation_period_days)))
    }

    /// Writes lifecycle settings given in a backup config PATCH to the cluster and each
    /// of its parts (already checked with [`check_days`]).
    pub(crate) async fn patch_key_lifecycle(
        &self,
        actor: &Actor,
        cluster: &Cluster,
        parts: &[Cluster],
        period: Option<u32>,
        grace: Option<u32>,
    ) -> Result<()> {
        if period.is_none() && grace.is_none() {
            return Ok(());
        }
        let mut all = Vec::with_capacity(parts.len());
        for part in parts {
            let mut s = self.store.key_lifecycle(part.id).await?;
            if let Some(p) = period {
                s.rotation_period_days = p;
            }
            if let Some(g) = grace {
                s.retired_key_destroy_after_days = g;
            }
            all.push((part.id, s));
        }
        let detail = format!(
            "key lifecycle:{}{}",
            period
                .map(|p| format!(" encryptionKeyRotationPeriodDays {p}"))
                .unwrap_or_default(),
            grace
                .map(|g| format!(" retiredKeyDestroyAfterDays {g}"))
                .unwrap_or_default()
        );
        let event = actor.event(
            "BACKUP_CONFIG_CHANGED",
            Some(cluster.group_id),
            Some(cluster.id),
            "SUCCESS",
            Some(&detail),
        );
        self.store.set_key_lifecycles(&all, &[event]).await?;
        Ok(())
    }

    /// Refuses a backup of a cluster whose current key is in the key error state.
    pub(crate) async fn refuse_if_key_not_active(&self, cluster: &Cluster) -> Result<()> {
        let Some(e) = self.store.key_state_error(cluster.id).await? else {
            return Ok(());
        };
        let current = self.store.current_master_key(cluster.id).await?;
        if current.is_some_and(|k| k.kmip_uid == e.kmip_uid) {
            return Err(Conflict::EncryptionKeyNotActive {
                cluster: cluster.id,
                detail: e.message,
            }
            .into());
        }
        Ok(())
    }

    /// Rotates the key of every encrypted cluster whose schedule is due. Run under the
    /// lease `job:schedule` ([`crate::maintenance`]).
    pub async fn rotate_due_keys(&self) -> Result<ScheduleReport> {
        let now = self.clock.now();
        let actor = Actor::system(SCHEDULER);
        let mut report = ScheduleReport::default();
        for (cluster, settings) in self.store.encrypted_clusters().await? {
            let Some(key) = self.store.current_master_key(cluster.id).await? else {
                continue;
            };
            match self.next_rotation(cluster.id, &key, settings) {
                Some(due) if due <= now => {}
                _ => continue,
            }
            match self
                .rotate_if_current(&actor, &cluster, RotationType::Scheduled, &key.kmip_uid)
                .await
            {
                Ok(false) => self.lifecycle.forget(cluster.id),
                Ok(true) => {
                    self.lifecycle.forget(cluster.id);
                    tracing::info!(cluster = %cluster.id, old_key = %key.kmip_uid, "scheduled master key rotation done");
                    report.rotated.push(cluster.id);
                }
                Err(e) => {
                    let retry = self
                        .lifecycle
                        .failed(cluster.id, key.kmip_uid.as_str(), now);
                    crate::metrics::scheduled_rotation_failed();
                    let detail = format!(
                        "scheduled rotation of master key {} failed: {e}; next attempt at {retry}",
                        key.kmip_uid
                    );
                    tracing::warn!(cluster = %cluster.id, "{detail}");
                    let mut event = actor.event(
                        SCHEDULED_ROTATION_FAILED,
                        Some(cluster.group_id),
                        Some(cluster.id),
                        "FAILURE",
                        Some(&detail),
                    );
                    event.old_key_uid = Some(key.kmip_uid.clone());
                    self.append_audit_logged(&event).await;
                    report.failed.push(cluster.id);
                }
            }
        }
        Ok(report)
    }

    /// Checks every encrypted cluster's current key in the KMIP server and records what
    /// is wrong (see the module docs). Run under the lease `job:watch`.
    pub async fn watch_key_states(&self) -> Result<WatchReport> {
        let mut report = WatchReport::default();
        for (cluster, _) in self.store.encrypted_clusters().await? {
            let Some(key) = self.store.current_master_key(cluster.id).await? else {
                continue;
            };
            report.checked += 1;
            let finding = match self.keys.key_state(&key.kmip_uid).await {
                Ok(KeyState::Active) => None,
                Ok(state) => Some(format!(
                    "Master key {} of cluster {} is {} in KMIP server {}, not Active.",
                    key.kmip_uid,
                    cluster.id,
                    state.as_str(),
                    key.kmip_server
                )),
                Err(e) if e.is_item_not_found() => Some(format!(
                    "Master key {} of cluster {} is missing from KMIP server {} ({e}).",
                    key.kmip_uid, cluster.id, key.kmip_server
                )),
                Err(e) => {
                    // Not a key error: keep whatever was recorded until the server answers.
                    tracing::debug!(cluster = %cluster.id, error = %e, "key state unknown");
                    report.unknown += 1;
                    if let Some(recorded) = self.store.key_state_error(cluster.id).await?
                        && recorded.kmip_uid == key.kmip_uid
                    {
                        report.in_error += 1;
                    }
                    continue;
                }
            };
            match finding {
                None => {
                    if self.store.clear_key_state_error(cluster.id).await? {
                        let detail = format!("master key {} is Active", key.kmip_uid);
                        tracing::info!(cluster = %cluster.id, "{detail}");
                        let event = crate::audit_event(
                            KEY_STATE_CLEARED,
                            Some(cluster.group_id),
                            Some(cluster.id),
                            Some(LIFECYCLE_ACTOR),
                            None,
                            "SUCCESS",
                            Some(&detail),
                        );
                        self.append_audit_logged(&event).await;
                    }
                }
                Some(message) => {
                    report.in_error += 1;
                    let error = KeyStateError {
                        cluster_id: cluster.id,
                        kmip_uid: key.kmip_uid.clone(),
                        message: message.clone(),
                        since: crate::now(),
                    };
                    if self.store.set_key_state_error(&error).await? {
                        tracing::warn!(cluster = %cluster.id, "{message}");
                        let mut event = crate::audit_event(
                            KEY_STATE_ERROR,
                            Some(cluster.group_id),
                            Some(cluster.id),
                            Some(LIFECYCLE_ACTOR),
                            None,
                            "FAILURE",
                            Some(&message),
                        );
                        event.old_key_uid = Some(key.kmip_uid.clone());
                        self.append_audit_logged(&event).await;
                    }
                }
            }
        }
        crate::metrics::key_state_errors(report.in_error);
        Ok(report)
    }

    /// Destroys the retired keys past their grace that nothing references, and finishes
    /// destructions left unfinished (see the module docs). Run under the lease
    /// `job:destroy`.
    pub async fn destroy_retired_keys(&self) -> Result<DestroyReport> {
        let now = self.clock.now();
        let mut report = DestroyReport::default();
        for (cluster, settings) in self.store.encrypted_clusters().await? {
            let fates = self.store.retired_key_fates(cluster.id).await?;
            for f in fates
                .iter()
                .filter(|f| f.fate == RetiredKeyFate::Destroying)
            {
                self.destroy_claimed(&cluster, &f.kmip_uid, &mut report)
                    .await?;
            }
            if settings.retired_key_destroy_after_days == 0 {
                continue;
            }
            let grace = days(settings.retired_key_destroy_after_days);
            for key in self.store.master_keys(cluster.id).await? {
                let Some(retired) = key.retired else { continue };
                if retired + grace > now || fates.iter().any(|f| f.kmip_uid == key.kmip_uid) {
                    continue;
                }
                match self
                    .store
                    .claim_key_destruction(cluster.id, &key.kmip_uid, crate::now())
                    .await?
                {
                    DestructionClaim::Claimed => {
                        self.destroy_claimed(&cluster, &key.kmip_uid, &mut report)
                            .await?;
                    }
                    DestructionClaim::Referenced {
                        data_keys,
                        snapshots,
                    } => {
                        tracing::info!(
                            cluster = %cluster.id, key = %key.kmip_uid, data_keys, snapshots,
                            "retired master key past its grace is kept: data keys or snapshots still depend on it"
                        );
                        report.referenced.push(key.kmip_uid.clone());
                    }
                    DestructionClaim::Decided(_) | DestructionClaim::NotRetired => {}
                }
            }
        }
        Ok(report)
    }

    /// KMIP Destroy of a key claimed for destruction, then its record.
    async fn destroy_claimed(
        &self,
        cluster: &Cluster,
        uid: &KmipUid,
        report: &mut DestroyReport,
    ) -> Result<()> {
        // KMIP destroys only keys that are not Active: revoke one whose revocation after
        // its rotation never went through.
        if let Ok(KeyState::Active) = self.keys.key_state(uid).await
            && let Err(e) = self.keys.revoke(uid, RevokeReason::Superseded).await
        {
            tracing::warn!(cluster = %cluster.id, key = %uid, error = %e, "cannot revoke a retired key before destroying it");
        }
        match self.keys.destroy(uid).await {
            // Already gone from the server: destroyed all the same.
            Ok(()) => {}
            Err(e) if e.is_item_not_found() => {}
            Err(e) => {
                tracing::warn!(cluster = %cluster.id, key = %uid, error = %e, "cannot destroy a retired master key yet; will try again");
                self.store
                    .finish_key_destruction(cluster.id, uid, None)
                    .await?;
                report.failed.push(uid.clone());
                return Ok(());
            }
        }
        self.store
            .finish_key_destruction(cluster.id, uid, Some(crate::now()))
            .await?;
        tracing::info!(cluster = %cluster.id, key = %uid, "retired master key destroyed");
        let mut event = crate::audit_event(
            KEY_DESTROYED,
            Some(cluster.group_id),
            Some(cluster.id),
            Some(LIFECYCLE_ACTOR),
            None,
            "SUCCESS",
            Some("retired master key destroyed in the KMIP server after its grace period"),
        );
        event.old_key_uid = Some(uid.clone());
        self.append_audit_logged(&event).await;
        report.destroyed.push(uid.clone());
        Ok(())
    }

    /// Cancels the destruction of a retired key for good
    /// (`POST .../encryptionKeys/{uid}/restore`); the key's history entry.
    pub async fn cancel_key_destruction(
        &self,
        actor: &Actor,
        group_id: &str,
        cluster_id: &str,
        uid: &str,
    ) -> Result<KeyHistoryEntry> {
        let group = self.groups.admin_group(actor, group_id).await?;
        let cluster = self.cluster_in(&group, cluster_id).await?;
        if uid.is_empty() || uid.len() > MAX_UID {
            return Err(NotFound::MasterKey(KmipUid::new(crate::groups::truncate(uid))).into());
        }
        let key_uid = KmipUid::new(uid);
        match self
            .store
            .keep_retired_key(cluster.id, &key_uid, crate::now())
            .await
        {
            Ok(RetiredKeyFate::Kept) => {}
            Ok(RetiredKeyFate::Destroying | RetiredKeyFate::Destroyed) => {
                return Err(Conflict::CannotCancelKeyDestruction(format!(
                    "Master key {uid} of cluster {} is already destroyed.",
                    cluster.id
                ))
                .into());
            }
            Err(StoreError::NotFound(_)) => {
                return Err(NotFound::MasterKey(key_uid).into());
            }
            Err(StoreError::Precondition(_)) => {
                return Err(Conflict::CannotCancelKeyDestruction(format!(
                    "Master key {uid} is the current key of cluster {}; only retired keys are destroyed.",
                    cluster.id
                )).into());
            }
            Err(e) => return Err(e.into()),
        }
        let mut event = actor.event(
            KEY_DESTROY_CANCELLED,
            Some(group.id),
            Some(cluster.id),
            "SUCCESS",
            Some("the retired master key will never be destroyed"),
        );
        event.old_key_uid = Some(key_uid.clone());
        self.store.append_audit(&event).await?;
        self.key_history(actor, group_id, cluster_id)
            .await?
            .into_iter()
            .find(|h| h.key.kmip_uid == key_uid)
            .ok_or_else(|| NotFound::MasterKey(key_uid).into())
    }

    async fn append_audit_logged(&self, event: &headlock_core::model::AuditEvent) {
        if let Err(e) = self.store.append_audit(event).await {
            tracing::error!(error = %e, event = %event.event_type, "cannot record a key lifecycle event in the audit trail");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_days_in_range_and_rejects_the_rest() {
        assert_eq!(check_days("f", 0).unwrap(), 0);
        assert_eq!(check_days("f", 1).unwrap(), 1);
        assert_eq!(check_days("f", 3650).unwrap(), 3650);
        for bad in [-1, 3651, i64::MAX, i64::MIN] {
            let e = check_days("encryptionKeyRotationPeriodDays", bad).unwrap_err();
            assert!(
                e.to_string().contains("encryptionKeyRotationPeriodDays"),
                "{e}"
            );
        }
    }

    #[test]
    fn retry_back_off_doubles_to_an_hour_and_resets_for_another_key() {
        let state = LifecycleState::default();
        let c = ObjectId::new();
        let t = OffsetDateTime::UNIX_EPOCH;
        let mut pauses = Vec::new();
        for _ in 0..10 {
            pauses.push((state.failed(c, "k1", t) - t).whole_seconds());
        }
        assert_eq!(pauses[..7], [60, 120, 240, 480, 960, 1920, 3600]);
        assert!(pauses[7..].iter().all(|&p| p == 3600));
        assert_eq!(state.retry_at(c, "k2"), None, "a new key has no back-off");
        assert_eq!((state.failed(c, "k2", t) - t).whole_seconds(), 60);
        state.forget(c);
        assert_eq!(state.retry_at(c, "k2"), None);
    }
}
