//! The key lifecycle part of the [`MetadataStore`] conformance suite
//! (`migrations/0004_key_lifecycle.sql`): lifecycle settings, key state findings and the
//! fates of retired keys, on SQLite and on PostgreSQL. References that the service never
//! writes itself (a data key or a snapshot still depending on a retired key) are made
//! with raw SQL beside the store.

use headlock_core::model::{
    AuditEvent, BackupConfig, Cluster, ClusterType, DataKeyRecord, DestructionClaim, Group,
    IntentPhase, KeyIntent, KeyLifecycleSettings, KeyStateError, MasterKeyRecord, RetiredKeyFate,
    RotationType,
};
use headlock_core::store::KeyChange;
use headlock_core::{KmipUid, MetadataStore, ObjectId, StoreError};
use headlock_store::truncate_to_micros;
use time::OffsetDateTime;

#[macro_use]
mod common;
use common::{Backend, PgBackend, SqliteBackend};

macro_rules! lifecycle_suite {
    ($backend:ident: $harness:ty) => {
        stamp!($backend: $harness, [
            lifecycle_settings_default_off_and_round_trip,
            rejects_lifecycle_settings_of_missing_cluster_and_writes_nothing,
            encrypted_clusters_lists_only_encrypted_data_bearing_clusters,
            key_state_error_reports_only_changes,
            claim_refuses_current_and_referenced_keys_and_claims_an_unreferenced_one,
            claim_counts_snapshots_whose_data_key_the_key_wraps,
            finishing_a_destruction_records_it_and_a_failed_one_releases_it,
            keep_cancels_destruction_for_good_and_refuses_current_and_unknown_keys,
            delete_cluster_removes_its_lifecycle_records,
        ]);
    };
}

lifecycle_suite!(sqlite: SqliteBackend);
lifecycle_suite!(postgres: PgBackend);

fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

fn event(group: &Group, detail: &str) -> AuditEvent {
    AuditEvent {
        id: ObjectId::new(),
        created: now(),
        event_type: "BACKUP_CONFIG_CHANGED".into(),
        group_id: Some(group.id),
        cluster_id: None,
        username: Some("alice".into()),
        remote_address: None,
        outcome: "SUCCESS".into(),
        old_key_uid: None,
        new_key_uid: None,
        detail: Some(detail.into()),
    }
}

fn cluster(group: &Group, name: &str, kind: ClusterType, parent: Option<ObjectId>) -> Cluster {
    Cluster {
        id: ObjectId::new(),
        group_id: group.id,
        cluster_name: name.into(),
        type_name: kind,
        replica_set_name: (kind != ClusterType::ShardedReplicaSet).then(|| format!("{name}-rs")),
        shard_name: None,
        parent_cluster_id: parent,
        created: now(),
    }
}

async fn group(s: &dyn MetadataStore) -> Group {
    let g = Group {
        id: ObjectId::new(),
        name: format!("g-{}", ObjectId::new()),
        org_id: ObjectId::new(),
        created: now(),
    };
    s.insert_group(&g).await.unwrap();
    g
}

/// A stored replica set (inactive, unencrypted config).
async fn replica_set(s: &dyn MetadataStore, g: &Group, name: &str) -> Cluster {
    let c = cluster(g, name, ClusterType::ReplicaSet, None);
    s.insert_clusters(
        std::slice::from_ref(&c),
        &[BackupConfig::new_inactive(g.id, c.id)],
    )
    .await
    .unwrap();
    c
}

/// A KMIP uid from its text.
fn uid(text: &str) -> KmipUid {
    KmipUid::new(text)
}

/// Makes `uid` the cluster's current key (its data key wrapped by it, encryption on).
async fn change_key(s: &dyn MetadataStore, c: &Cluster, from: Option<&str>, uid: &str) {
    let intent = KeyIntent {
        id: ObjectId::new(),
        cluster_id: c.id,
        key_name: format!("headlock-{}-{uid}", c.id),
        previous_uid: from.map(KmipUid::from),
        new_uid: None,
        phase: IntentPhase::Pending,
        rotation_type: RotationType::Manual,
        requested_by: "alice".into(),
        created: now(),
    };
    s.insert_intent(&intent).await.unwrap();
    let mut config = BackupConfig::new_inactive(c.group_id, c.id);
    config.encryption_enabled = true;
    let mut audit = event(
        &Group {
            id: c.group_id,
            name: String::new(),
            org_id: ObjectId::new(),
            created: now(),
        },
        uid,
    );
    audit.event_type = "RS_ROTATE_MASTER_KEY_AUDIT".into();
    s.commit_key_change(&KeyChange {
        intent_id: intent.id,
        cluster_id: c.id,
        expected_current: from.map(KmipUid::from),
        new_key: MasterKeyRecord {
            cluster_id: c.id,
            kmip_uid: uid.into(),
            kmip_server: "127.0.0.1:5696".into(),
            kmip_name: format!("headlock-{uid}"),
            created: now(),
            retired: None,
            rotation_type: RotationType::Manual,
            requested_by: "alice".into(),
        },
        retired_at: now(),
        data_keys: vec![DataKeyRecord {
            id: ObjectId::new(),
            cluster_id: c.id,
            wrapped: vec![7; 60],
            master_key_uid: uid.into(),
            created: now(),
        }],
        data_keys_read: None,
        configs: vec![config],
        audit,
        lease: None,
    })
    .await
    .unwrap();
    s.delete_intent(intent.id).await.unwrap();
}

/// A replica set whose keys were `k1`, then `k2` (current).
async fn rotated(s: &dyn MetadataStore) -> (Group, Cluster) {
    let g = group(s).await;
    let c = replica_set(s, &g, "rs").await;
    change_key(s, &c, None, "k1").await;
    change_key(s, &c, Some("k1"), "k2").await;
    (g, c)
}

mod suite {
    use super::*;

    pub async fn lifecycle_settings_default_off_and_round_trip(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let g = group(s).await;
        let (c1, c2) = (replica_set(s, &g, "a").await, replica_set(s, &g, "b").await);
        assert_eq!(
            s.key_lifecycle(c1.id).await.unwrap(),
            KeyLifecycleSettings::default()
        );
        let one = KeyLifecycleSettings {
            rotation_period_days: 90,
            retired_key_destroy_after_days: 3650,
        };
        let two = KeyLifecycleSettings {
            rotation_period_days: 1,
            retired_key_destroy_after_days: 0,
        };
        let (_, before) = s.list_audit(None, Default::default()).await.unwrap();
        s.set_key_lifecycles(&[(c2.id, two), (c1.id, one)], &[event(&g, "set")])
            .await
            .unwrap();
        assert_eq!(s.key_lifecycle(c1.id).await.unwrap(), one);
        assert_eq!(s.key_lifecycle(c2.id).await.unwrap(), two);
        let (_, after) = s.list_audit(None, Default::default()).await.unwrap();
        assert_eq!(after, before + 1);
        s.set_key_lifecycles(&[(c1.id, two)], &[]).await.unwrap();
        assert_eq!(s.key_lifecycle(c1.id).await.unwrap(), two, "replaced");
    }

    pub async fn rejects_lifecycle_settings_of_missing_cluster_and_writes_nothing(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let g = group(s).await;
        let c = replica_set(s, &g, "a").await;
        let set = KeyLifecycleSettings {
            rotation_period_days: 7,
            retired_key_destroy_after_days: 7,
        };
        let r = s
            .set_key_lifecycles(&[(c.id, set), (ObjectId::new(), set)], &[])
            .await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        assert_eq!(
            s.key_lifecycle(c.id).await.unwrap(),
            KeyLifecycleSettings::default(),
            "one transaction"
        );
    }

    pub async fn encrypted_clusters_lists_only_encrypted_data_bearing_clusters(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let g = group(s).await;
        let plain = replica_set(s, &g, "plain").await;
        let (_, keyed) = (plain.id, replica_set(s, &g, "keyed").await);
        change_key(s, &keyed, None, "k1").await;
        let whole = cluster(&g, "sh", ClusterType::ShardedReplicaSet, None);
        let shard = cluster(&g, "sh", ClusterType::ReplicaSet, Some(whole.id));
        let all = [whole.clone(), shard.clone()];
        let mut configs: Vec<BackupConfig> = all
            .iter()
            .map(|c| BackupConfig::new_inactive(g.id, c.id))
            .collect();
        for c in &mut configs {
            c.encryption_enabled = true;
        }
        s.insert_clusters(&all, &configs).await.unwrap();
        let set = KeyLifecycleSettings {
            rotation_period_days: 30,
            retired_key_destroy_after_days: 2,
        };
        s.set_key_lifecycles(&[(keyed.id, set)], &[]).await.unwrap();
        let mut found = s.encrypted_clusters().await.unwrap();
        found.sort_by_key(|(c, _)| c.id);
        let mut expected = vec![
            (keyed.clone(), set),
            (shard.clone(), KeyLifecycleSettings::default()),
        ];
        expected.sort_by_key(|(c, _)| c.id);
        assert_eq!(found, expected);
    }

    pub async fn key_state_error_reports_only_changes(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = rotated(s).await;
        assert_eq!(s.key_state_error(c.id).await.unwrap(), None);
        assert!(!s.clear_key_state_error(c.id).await.unwrap());
        let mut e = KeyStateError {
            cluster_id: c.id,
            kmip_uid: "k2".into(),
            message: "k2 is Deactivated".into(),
            since: now(),
        };
        assert!(s.set_key_state_error(&e).await.unwrap());
        let first = e.clone();
        e.since = now() + time::Duration::seconds(5);
        assert!(!s.set_key_state_error(&e).await.unwrap(), "same finding");
        assert_eq!(s.key_state_error(c.id).await.unwrap(), Some(first));
        e.message = "k2 is missing".into();
        assert!(s.set_key_state_error(&e).await.unwrap(), "new message");
        e.kmip_uid = "k3".into();
        assert!(s.set_key_state_error(&e).await.unwrap(), "new key");
        assert_eq!(s.key_state_error(c.id).await.unwrap(), Some(e.clone()));
        assert!(s.clear_key_state_error(c.id).await.unwrap());
        assert_eq!(s.key_state_error(c.id).await.unwrap(), None);
        e.cluster_id = ObjectId::new();
        assert!(matches!(
            s.set_key_state_error(&e).await,
            Err(StoreError::NotFound(_))
        ));
    }

    pub async fn claim_refuses_current_and_referenced_keys_and_claims_an_unreferenced_one<
        B: Backend,
    >(
        b: B,
    ) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = rotated(s).await;
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k2"), now())
                .await
                .unwrap(),
            DestructionClaim::NotRetired,
            "the current key"
        );
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("nope"), now())
                .await
                .unwrap(),
            DestructionClaim::NotRetired
        );
        assert_eq!(
            s.claim_key_destruction(ObjectId::new(), &uid("k1"), now())
                .await
                .unwrap(),
            DestructionClaim::NotRetired
        );
        // A data key still wrapped by k1, behind the store's back.
        let n = b
            .raw_execute(
                "INSERT INTO data_keys (id, cluster_id, wrapped_hex, master_key_uid, created_us) \
                 VALUES ($1, $2, '00', 'k1', 0)",
                &[&ObjectId::new().to_string(), &c.id.to_string()],
            )
            .await;
        assert_eq!(n, 1);
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k1"), now())
                .await
                .unwrap(),
            DestructionClaim::Referenced {
                data_keys: 1,
                snapshots: 0
            }
        );
        assert!(s.retired_key_fates(c.id).await.unwrap().is_empty());
        b.raw_execute(
            "DELETE FROM data_keys WHERE cluster_id = $1 AND master_key_uid = 'k1'",
            &[&c.id.to_string()],
        )
        .await;
        let at = now();
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k1"), at).await.unwrap(),
            DestructionClaim::Claimed
        );
        let fates = s.retired_key_fates(c.id).await.unwrap();
        assert_eq!(fates.len(), 1);
        assert_eq!(
            (fates[0].kmip_uid.as_str(), fates[0].fate, fates[0].changed),
            ("k1", RetiredKeyFate::Destroying, at)
        );
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k1"), now())
                .await
                .unwrap(),
            DestructionClaim::Decided(RetiredKeyFate::Destroying)
        );
    }

    pub async fn claim_counts_snapshots_whose_data_key_the_key_wraps(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (g, c) = rotated(s).await;
        let dk = ObjectId::new().to_string();
        b.raw_execute(
            "INSERT INTO data_keys (id, cluster_id, wrapped_hex, master_key_uid, created_us) \
             VALUES ($1, $2, '00', 'k1', 0)",
            &[&dk, &c.id.to_string()],
        )
        .await;
        b.raw_execute(
            "INSERT INTO snapshots (id, group_id, cluster_id, created_us, kind, \
             data_size_bytes, stored_size_bytes, file_size_bytes, expires_us, do_not_delete, \
             data_key_id) VALUES ($1, $2, $3, 0, 'stream', 0, 0, 0, NULL, FALSE, $4)",
            &[
                &ObjectId::new().to_string(),
                &g.id.to_string(),
                &c.id.to_string(),
                &dk,
            ],
        )
        .await;
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k1"), now())
                .await
                .unwrap(),
            DestructionClaim::Referenced {
                data_keys: 1,
                snapshots: 1
            }
        );
    }

    pub async fn finishing_a_destruction_records_it_and_a_failed_one_releases_it(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = rotated(s).await;
        assert!(matches!(
            s.finish_key_destruction(c.id, &uid("k1"), Some(now()))
                .await,
            Err(StoreError::NotFound(_))
        ));
        s.claim_key_destruction(c.id, &uid("k1"), now())
            .await
            .unwrap();
        s.finish_key_destruction(c.id, &uid("k1"), None)
            .await
            .unwrap();
        assert!(
            s.retired_key_fates(c.id).await.unwrap().is_empty(),
            "released"
        );
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k1"), now())
                .await
                .unwrap(),
            DestructionClaim::Claimed
        );
        let at = now() + time::Duration::seconds(3);
        s.finish_key_destruction(c.id, &uid("k1"), Some(at))
            .await
            .unwrap();
        let fates = s.retired_key_fates(c.id).await.unwrap();
        assert_eq!(
            (fates[0].fate, fates[0].changed),
            (RetiredKeyFate::Destroyed, at)
        );
        assert!(matches!(
            s.finish_key_destruction(c.id, &uid("k1"), None).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(
            s.keep_retired_key(c.id, &uid("k1"), now()).await.unwrap(),
            RetiredKeyFate::Destroyed,
            "too late to cancel"
        );
    }

    pub async fn keep_cancels_destruction_for_good_and_refuses_current_and_unknown_keys(
        b: impl Backend,
    ) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = rotated(s).await;
        assert!(matches!(
            s.keep_retired_key(c.id, &uid("nope"), now()).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.keep_retired_key(c.id, &uid("k2"), now()).await,
            Err(StoreError::Precondition(_))
        ));
        let at = now();
        assert_eq!(
            s.keep_retired_key(c.id, &uid("k1"), at).await.unwrap(),
            RetiredKeyFate::Kept
        );
        assert_eq!(
            s.keep_retired_key(c.id, &uid("k1"), now()).await.unwrap(),
            RetiredKeyFate::Kept,
            "idempotent"
        );
        assert_eq!(s.retired_key_fates(c.id).await.unwrap()[0].changed, at);
        assert_eq!(
            s.claim_key_destruction(c.id, &uid("k1"), now())
                .await
                .unwrap(),
            DestructionClaim::Decided(RetiredKeyFate::Kept)
        );
    }

    pub async fn delete_cluster_removes_its_lifecycle_records(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (g, c) = rotated(s).await;
        s.set_key_lifecycles(
            &[(
                c.id,
                KeyLifecycleSettings {
                    rotation_period_days: 1,
                    retired_key_destroy_after_days: 1,
                },
            )],
            &[],
        )
        .await
        .unwrap();
        s.set_key_state_error(&KeyStateError {
            cluster_id: c.id,
            kmip_uid: "k2".into(),
            message: "gone".into(),
            since: now(),
        })
        .await
        .unwrap();
        s.keep_retired_key(c.id, &uid("k1"), now()).await.unwrap();
        s.delete_cluster(g.id, c.id).await.unwrap();
        assert_eq!(
            s.key_lifecycle(c.id).await.unwrap(),
            KeyLifecycleSettings::default()
        );
        assert_eq!(s.key_state_error(c.id).await.unwrap(), None);
        assert!(s.retired_key_fates(c.id).await.unwrap().is_empty());
    }
}
