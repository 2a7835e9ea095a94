//! A crash at every step of a key change, then a restart: a new node on the same database
//! and KMIP server reconciles from the intent it reads back, and the cluster ends with
//! one current Active key that opens every data key, the other keys in the KMIP state
//! their fate calls for, and an audit chain that verifies.
//!
//! The crash is a key manager that stops at one step and never answers: the rotation's
//! task is then aborted, so nothing after that step runs, as if the process had died
//! there (the store is only ever written between key manager calls, so every point
//! between two store writes is one of these).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use headlock_core::envelope::MasterKeyMaterial;
use headlock_core::keys::{CreatedKey, KeyState, KmipUid, RevokeReason};
use headlock_core::model::{AuditEvent, IntentPhase, KeyIntent, RotationType};
use headlock_core::{KeyManager, KeyManagerError};
use headlock_kmip::KmipKeyManager;
use headlock_service::Service;
use headlock_service::rotation::{OrphanFate, ReconcileReport};
use kmip::types::{CryptographicAlgorithm, CryptographicUsageMask};
use tokio::sync::Notify;

use crate::harness::{
    Encrypted, World, admin, assert_settled, backup, current_key, enable_encryption,
    encrypted_cluster, random_bytes, replica_set, restore,
};

/// Where a key change stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashAt {
    /// The intent is written (Pending); KMIP Create was not sent.
    BeforeCreate,
    /// KMIP Create made the key; Activate was not sent (it stays Pre-Active).
    BetweenCreateAndActivate,
    /// The key is made and Active; the intent does not name it yet (still Pending).
    AfterActivate,
    /// The node has the new key, Active; the data keys are not re-wrapped (the Get of
    /// the old key's material, which comes after, never answers). The intent is still
    /// Pending: it names the new key only when the change commits.
    DuringRewrap,
    /// The store committed the switch (Committed); the old key was not revoked.
    AfterCommit,
    /// The old key is revoked; the intent is not deleted yet.
    AfterRevoke,
}

/// KmipKeyManager's own Create, without the Activate that follows it: the key named
/// `name` is left Pre-Active.
async fn create_without_activate(keys: &KmipKeyManager, name: &str) {
    let usage = CryptographicUsageMask(
        CryptographicUsageMask::ENCRYPT.0 | CryptographicUsageMask::DECRYPT.0,
    );
    keys.client()
        .create_symmetric_key(CryptographicAlgorithm::AES, 256, usage, Some(name))
        .await
        .unwrap();
}

/// A key manager on the world's KMIP server that stops for good at one step.
struct CrashingKeys {
    inner: KmipKeyManager,
    at: CrashAt,
    /// The key this key manager created.
    created: Mutex<Option<KmipUid>>,
    /// Told when the crash point is reached.
    reached: Arc<Notify>,
}

impl CrashingKeys {
    async fn crash(&self) -> ! {
        self.reached.notify_one();
        std::future::pending::<()>().await;
        unreachable!()
    }
}

#[async_trait]
impl KeyManager for CrashingKeys {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create_master_key(
        &self,
        name: &str,
        previous: Option<&KmipUid>,
    ) -> Result<CreatedKey, KeyManagerError> {
        match self.at {
            CrashAt::BeforeCreate => self.crash().await,
            CrashAt::BetweenCreateAndActivate => {
                create_without_activate(&self.inner, name).await;
                self.crash().await
            }
            _ => {}
        }
        // To stop during the re-wrap, the previous key is fetched on its own (below), not
        // with the new one.
        let previous = previous.filter(|_| self.at != CrashAt::DuringRewrap);
        let created = self.inner.create_master_key(name, previous).await?;
        if self.at == CrashAt::AfterActivate {
            self.crash().await
        }
        *self.created.lock().unwrap() = Some(created.uid.clone());
        Ok(created)
    }

    async fn master_key_material(
        &self,
        uid: &KmipUid,
    ) -> Result<MasterKeyMaterial, KeyManagerError> {
        // The new key's material comes with its creation: a Get after it is the old
        // key's, for the re-wrap.
        let after_create = self.created.lock().unwrap().is_some();
        if self.at == CrashAt::DuringRewrap && after_create {
            self.crash().await
        }
        self.inner.master_key_material(uid).await
    }

    async fn locate_by_name(&self, name: &str) -> Result<Vec<KmipUid>, KeyManagerError> {
        self.inner.locate_by_name(name).await
    }

    async fn revoke(&self, uid: &KmipUid, reason: RevokeReason) -> Result<(), KeyManagerError> {
        if self.at == CrashAt::AfterCommit {
            self.crash().await
        }
        self.inner.revoke(uid, reason).await?;
        if self.at == CrashAt::AfterRevoke {
            self.crash().await
        }
        Ok(())
    }

    async fn key_state(&self, uid: &KmipUid) -> Result<KeyState, KeyManagerError> {
        self.inner.key_state(uid).await
    }

    async fn destroy(&self, uid: &KmipUid) -> Result<(), KeyManagerError> {
        self.inner.destroy(uid).await
    }
}

/// A key manager on the world's KMIP server whose Activate is refused: Create makes the
/// key, which stays Pre-Active, and `create_master_key` fails as `KmipKeyManager`'s does
/// when the server refuses Activate.
struct ActivateRefused {
    inner: KmipKeyManager,
}

#[async_trait]
impl KeyManager for ActivateRefused {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn create_master_key(
        &self,
        name: &str,
        _previous: Option<&KmipUid>,
    ) -> Result<CreatedKey, KeyManagerError> {
        create_without_activate(&self.inner, name).await;
        Err(KeyManagerError::Refused {
            server: self.describe(),
            operation: "Activate".into(),
            reason: "PermissionDenied: refused by the test".into(),
        })
    }

    async fn master_key_material(
        &self,
        uid: &KmipUid,
    ) -> Result<MasterKeyMaterial, KeyManagerError> {
        self.inner.master_key_material(uid).await
    }

    async fn locate_by_name(&self, name: &str) -> Result<Vec<KmipUid>, KeyManagerError> {
        self.inner.locate_by_name(name).await
    }

    async fn revoke(&self, uid: &KmipUid, reason: RevokeReason) -> Result<(), KeyManagerError> {
        self.inner.revoke(uid, reason).await
    }

    async fn key_state(&self, uid: &KmipUid) -> Result<KeyState, KeyManagerError> {
        self.inner.key_state(uid).await
    }

    async fn destroy(&self, uid: &KmipUid) -> Result<(), KeyManagerError> {
        self.inner.destroy(uid).await
    }
}

/// A world with an encrypted cluster and one snapshot, made by a node that is gone.
struct Before {
    world: World,
    cluster: Encrypted,
    /// The cluster's key before the crash.
    old_key: KmipUid,
    snapshot: headlock_core::ObjectId,
    data: Vec<u8>,
}

async fn before() -> Before {
    let world = World::start().await;
    let node = world.node().await;
    let cluster = encrypted_cluster(&node).await;
    let old_key = current_key(&node, cluster.cluster.id).await;
    let data = random_bytes(300 * 1024);
    let snapshot = backup(&node, &cluster, &data).await;
    Before {
        world,
        cluster,
        old_key,
        snapshot,
        data,
    }
}

/// Runs `change` on a node whose key manager stops at `at`, kills it there, and returns
/// the one intent the store holds afterwards.
async fn crash_during<F, Fut>(world: &World, at: CrashAt, change: F) -> KeyIntent
where
    F: FnOnce(Service) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let reached = Arc::new(Notify::new());
    let keys = CrashingKeys {
        inner: world.key_manager(),
        at,
        created: Mutex::new(None),
        reached: reached.clone(),
    };
    let node = world.node_with(Arc::new(keys)).await;
    let task = tokio::spawn(change(node.clone()));
    tokio::time::timeout(Duration::from_secs(20), reached.notified())
        .await
        .unwrap_or_else(|_| panic!("the key change never reached {at:?}"));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let mut intents = node.store().intents().await.unwrap();
    drop(node);
    assert_eq!(intents.len(), 1, "one intent is left: {intents:?}");
    intents.remove(0)
}

/// A rotation of `kind` (manual, or a compromise) crashed at `at`.
async fn crash(b: &Before, kind: RotationType, at: CrashAt) -> KeyIntent {
    let (group, cluster) = (b.cluster.group.clone(), b.cluster.id());
    let intent = crash_during(&b.world, at, move |node| async move {
        // Never finishes: the key manager stops at the crash point.
        let _ = match kind {
            RotationType::Compromise => node
                .report_compromise(&admin(), &group, &cluster)
                .await
                .map(|_| ()),
            _ => node.rotate_encryption_key(&admin(), &group, &cluster).await,
        };
    })
    .await;
    assert_eq!(intent.previous_uid.as_ref(), Some(&b.old_key));
    intent
}

/// A restarted node: reconciles, then checks the end state and that the snapshot taken
/// before the crash still restores. Returns the node, the current key and what
/// reconciliation reported.
async fn restart_and_reconcile(
    b: &Before,
    retired_state: KeyState,
) -> (Service, KmipUid, ReconcileReport) {
    let node = b.world.node().await;
    let report = node.reconcile().await.unwrap();
    assert_eq!((report.resolved, report.deferred), (1, 0), "{report:?}");
    let current = assert_settled(&b.world, &node, &b.cluster.cluster, retired_state).await;
    assert_eq!(restore(&node, &b.cluster, b.snapshot).await, b.data);
    (node, current, report)
}

/// The audit events of type `event_type` of the cluster's group, newest first.
async fn events_of(b: &Before, node: &Service, event_type: &str) -> Vec<AuditEvent> {
    let page = headlock_core::model::Page { num: 1, size: 100 };
    let (events, _) = node
        .events()
        .list_events(&admin(), &b.cluster.group, page)
        .await
        .unwrap();
    events
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

/// Checks that reconciliation destroyed exactly the keys `orphans` in the KMIP server,
/// found in `found`, and that its `MASTER_KEY_RECONCILED` event says so.
async fn assert_orphans_destroyed(
    b: &Before,
    node: &Service,
    report: &ReconcileReport,
    orphans: &[KmipUid],
    found: KeyState,
) {
    let fates: Vec<_> = report
        .orphans
        .iter()
        .map(|o| (o.uid.clone(), o.found, o.fate.clone()))
        .collect();
    let expected: Vec<_> = orphans
        .iter()
        .map(|uid| (uid.clone(), Some(found), OrphanFate::Destroyed))
        .collect();
    assert_eq!(fates, expected);
    for uid in orphans {
        assert_eq!(
            b.world.state(uid).await,
            KeyState::Destroyed,
            "orphan {uid}"
        );
    }
    let reconciled = events_of(b, node, "MASTER_KEY_RECONCILED").await;
    assert_eq!(reconciled.len(), 1, "{reconciled:?}");
    let event = &reconciled[0];
    assert_eq!(event.outcome, "SUCCESS");
    assert_eq!(event.new_key_uid.as_ref(), Some(&orphans[0]));
    let detail = event.detail.as_deref().unwrap();
    assert!(
        detail.contains(&format!(
            "key {} (was {}) destroyed",
            orphans[0],
            found.as_str()
        )),
        "{detail}"
    );
    assert!(!detail.contains("revoked"), "{detail}");
}

/// After a reconciliation that kept the old key, the cluster rotates normally.
async fn rotates_again(b: &Before, node: &Service) {
    node.rotate_encryption_key(&admin(), &b.cluster.group, &b.cluster.id())
        .await
        .unwrap();
    let current = assert_settled(&b.world, node, &b.cluster.cluster, KeyState::Deactivated).await;
    assert_ne!(current, b.old_key);
    assert_eq!(restore(node, &b.cluster, b.snapshot).await, b.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_before_kmip_create_drops_the_intent_and_keeps_the_old_key() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::BeforeCreate).await;
    assert_eq!((intent.phase, intent.new_uid), (IntentPhase::Pending, None));

    let (node, current, report) = restart_and_reconcile(&b, KeyState::Deactivated).await;
    assert_eq!(current, b.old_key);
    assert_eq!(report.orphans, Vec::new());
    assert_eq!(
        b.world.keys_named(&intent.key_name).await,
        Vec::<KmipUid>::new()
    );
    rotates_again(&b, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_between_create_and_activate_leaves_no_pre_active_key() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::BetweenCreateAndActivate).await;
    assert_eq!((intent.phase, intent.new_uid), (IntentPhase::Pending, None));
    let orphans = b.world.keys_named(&intent.key_name).await;
    assert_eq!(orphans.len(), 1);
    assert_eq!(b.world.state(&orphans[0]).await, KeyState::PreActive);

    let (node, current, report) = restart_and_reconcile(&b, KeyState::Deactivated).await;
    assert_eq!(current, b.old_key);
    assert_orphans_destroyed(&b, &node, &report, &orphans, KeyState::PreActive).await;
    rotates_again(&b, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_whose_activate_is_refused_destroys_the_pre_active_key_and_keeps_the_old_one() {
    let b = before().await;
    let node = b
        .world
        .node_with(Arc::new(ActivateRefused {
            inner: b.world.key_manager(),
        }))
        .await;
    let err = node
        .rotate_encryption_key(&admin(), &b.cluster.group, &b.cluster.id())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Activate"), "{err}");
    let intents = node.store().intents().await.unwrap();
    assert_eq!(intents, Vec::new(), "the failed change is undone at once");

    // The one key the failed rotation made is destroyed, not left Pre-Active.
    let keys = node
        .store()
        .master_keys(b.cluster.cluster.id)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    let failed: Vec<_> = events_of(&b, &node, "RS_ROTATE_MASTER_KEY_AUDIT")
        .await
        .into_iter()
        .filter(|e| e.outcome == "FAILURE")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let detail = failed[0].detail.as_deref().unwrap();
    let orphan = detail
        .split("key ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("the failure names the orphan key: {detail}"));
    assert!(
        detail.contains(&format!("key {orphan} (was Pre-Active) destroyed")),
        "{detail}"
    );
    assert_eq!(
        b.world.state(&KmipUid::from(orphan)).await,
        KeyState::Destroyed
    );

    let node = b.world.node().await;
    let current = assert_settled(&b.world, &node, &b.cluster.cluster, KeyState::Deactivated).await;
    assert_eq!(current, b.old_key);
    rotates_again(&b, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_between_activate_and_recording_the_key_destroys_it_by_name() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::AfterActivate).await;
    assert_eq!((intent.phase, intent.new_uid), (IntentPhase::Pending, None));
    let orphans = b.world.keys_named(&intent.key_name).await;
    assert_eq!(orphans.len(), 1);
    assert_eq!(b.world.state(&orphans[0]).await, KeyState::Active);

    let (node, current, report) = restart_and_reconcile(&b, KeyState::Deactivated).await;
    assert_eq!(current, b.old_key);
    assert_orphans_destroyed(&b, &node, &report, &orphans, KeyState::Active).await;
    rotates_again(&b, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_during_the_rewrap_destroys_the_new_key_and_keeps_the_old_one() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::DuringRewrap).await;
    assert_eq!(
        (intent.phase, intent.new_uid.clone()),
        (IntentPhase::Pending, None)
    );
    let [new_key] = <[_; 1]>::try_from(b.world.keys_named(&intent.key_name).await).unwrap();
    assert_eq!(b.world.state(&new_key).await, KeyState::Active);

    let (node, current, report) = restart_and_reconcile(&b, KeyState::Deactivated).await;
    assert_eq!(current, b.old_key);
    assert_orphans_destroyed(&b, &node, &report, &[new_key], KeyState::Active).await;
    rotates_again(&b, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_between_commit_and_revoke_revokes_the_superseded_key() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::AfterCommit).await;
    assert_eq!(intent.phase, IntentPhase::Committed);
    let new_key = intent.new_uid.clone().unwrap();
    assert_eq!(b.world.state(&b.old_key).await, KeyState::Active);

    let (_node, current, report) = restart_and_reconcile(&b, KeyState::Deactivated).await;
    assert_eq!(current, new_key);
    assert_eq!(report.superseded_revoked, vec![b.old_key.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_between_revoke_and_deleting_the_intent_finishes_the_rotation() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::AfterRevoke).await;
    assert_eq!(intent.phase, IntentPhase::Committed);
    let new_key = intent.new_uid.clone().unwrap();
    assert_eq!(b.world.state(&b.old_key).await, KeyState::Deactivated);

    let (_node, current, _) = restart_and_reconcile(&b, KeyState::Deactivated).await;
    assert_eq!(current, new_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_compromise_crash_between_commit_and_revoke_revokes_the_old_key_as_compromised()
 {
    let b = before().await;
    let intent = crash(&b, RotationType::Compromise, CrashAt::AfterCommit).await;
    assert_eq!(
        (intent.phase, intent.rotation_type),
        (IntentPhase::Committed, RotationType::Compromise)
    );

    let (node, current, _) = restart_and_reconcile(&b, KeyState::Compromised).await;
    assert_eq!(Some(current), intent.new_uid);
    // The re-encryption job was recorded before the crash; a restarted node resumes it.
    let (jobs, _) = node
        .list_reencryption_jobs(
            &admin(),
            &b.cluster.group,
            &b.cluster.id(),
            headlock_core::model::Page { num: 1, size: 10 },
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    node.resume_reencryption_jobs().await.unwrap();
    let job = crate::compromise::wait_for_job(&node, &b.cluster, jobs[0].id).await;
    assert_eq!((job.snapshots_done, job.error), (1, None));
    assert_eq!(
        node.store()
            .data_keys(b.cluster.cluster.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(restore(&node, &b.cluster, b.snapshot).await, b.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_after_a_crash_finishes_the_left_intent_first() {
    let b = before().await;
    let intent = crash(&b, RotationType::Manual, CrashAt::DuringRewrap).await;
    let [abandoned] = <[_; 1]>::try_from(b.world.keys_named(&intent.key_name).await).unwrap();

    // No reconciliation: the next rotation of the cluster finds the intent, takes its
    // lapsed (here: its own node's) lease, undoes it, then rotates.
    let node = b.world.node().await;
    node.rotate_encryption_key(&admin(), &b.cluster.group, &b.cluster.id())
        .await
        .unwrap();
    let current = assert_settled(&b.world, &node, &b.cluster.cluster, KeyState::Deactivated).await;
    assert_ne!(current, b.old_key);
    assert_ne!(current, abandoned);
    assert_eq!(b.world.state(&abandoned).await, KeyState::Destroyed);
    assert_eq!(restore(&node, &b.cluster, b.snapshot).await, b.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_crash_before_the_first_key_commits_leaves_encryption_off_until_enabled_again()
 {
    let world = World::start().await;
    let c = replica_set(&world.node().await).await;

    let mut intent = crash_during(&world, CrashAt::AfterActivate, |node| {
        let (group, id) = (c.group.clone(), c.id());
        async move {
            let _ = node
                .patch_backup_config(&admin(), &group, &id, enable_encryption())
                .await;
        }
    })
    .await;
    assert_eq!(
        (intent.phase, intent.previous_uid.as_ref()),
        (IntentPhase::Pending, None)
    );
    // An intent in NEW_KEY_ACTIVE, as releases before December 2026 recorded a new key
    // before its commit (the row stays Pending now): write it as such a node would
    // have, and leave the rest undone.
    let abandoned = world
        .key_manager()
        .locate_by_name(&intent.key_name)
        .await
        .unwrap();
    let [abandoned] = <[_; 1]>::try_from(abandoned).unwrap();
    intent.phase = IntentPhase::NewKeyActive;
    intent.new_uid = Some(abandoned.clone());
    let node = world.node().await;
    node.store().delete_intent(intent.id).await.unwrap();
    node.store().insert_intent(&intent).await.unwrap();
    let report = node.reconcile().await.unwrap();
    let fates: Vec<_> = report.orphans.iter().map(|o| (&o.uid, &o.fate)).collect();
    assert_eq!(fates, vec![(&abandoned, &OrphanFate::Destroyed)]);
    assert_eq!(world.state(&abandoned).await, KeyState::Destroyed);
    assert_eq!(
        node.store().current_master_key(c.cluster.id).await.unwrap(),
        None
    );
    let config = node
        .backup_config(&admin(), &c.group, &c.id())
        .await
        .unwrap();
    assert!(!config.encryption_enabled, "encryption is on without a key");

    let config = node
        .patch_backup_config(&admin(), &c.group, &c.id(), enable_encryption())
        .await
        .unwrap();
    assert!(config.encryption_enabled);
    let current = assert_settled(&world, &node, &c.cluster, KeyState::Deactivated).await;
    assert_ne!(current, abandoned);
}
