//! The [`MetadataStore`] conformance suite: what every store backend must do, written
//! once against `&dyn MetadataStore` and stamped out per backend by `conformance!`.
//!
//! A backend supplies a [`Backend`] harness (`common/mod.rs`: a fresh store in its own
//! place, a way to reopen it, and a raw connection for tampering behind the store's
//! back). SQLite runs in a temporary directory; PostgreSQL in a database of its own on
//! the test server (`HEADLOCK_TEST_POSTGRES_URL`, or the one `scripts/postgres.sh`
//! starts).

use std::sync::Arc;
use std::time::Duration;

use headlock_core::model::{
    AuditEvent, AuthMechanism, BackupConfig, BackupStatus, ChunkId, ChunkLocation, Cluster,
    ClusterType, DataKeyRecord, Group, IntentPhase, KeyIntent, MasterKeyRecord, Page, RestoreJob,
    Role, RoleAssignment, RotationType, SnapshotKind, SnapshotRecord, User,
};
use headlock_core::store::{KeyChange, Lease, LeaseRenewal, SnapshotCommit};
use headlock_core::{KmipUid, MetadataStore, ObjectId, StoreConflict, StoreError};
use headlock_store::truncate_to_micros;
use time::OffsetDateTime;

#[macro_use]
mod common;
use common::{Backend, PgBackend, SqliteBackend};

/// The whole suite for one backend: a module named `$backend` with one test per suite
/// function.
macro_rules! conformance {
    ($backend:ident: $harness:ty) => {
        stamp!($backend: $harness, [
            concurrent_commits_from_one_key_let_exactly_one_win,
            audit_chain_detects_tampering,
            audit_chain_detects_removed_event,
            audit_chain_detects_removed_tail,
            state_survives_reopen,
            concurrent_commits_of_one_new_chunk_let_exactly_one_win,
            collection_racing_commits_never_leaves_a_dangling_reference,
            concurrent_downloads_never_exceed_the_limit,
            snapshots_survive_reopen,
            accepts_ping,
            lease_goes_to_exactly_one_of_racing_holders,
            shared_secret_returns_the_first_value_to_every_caller,
            shared_secret_agrees_among_concurrent_callers,
        ], store: [
            accepts_group_round_trip_by_id_and_name,
            rejects_duplicate_group_name,
            lists_groups_oldest_first_in_pages,
            accepts_cluster_and_config_round_trip,
            rejects_duplicate_cluster_name_in_group,
            accepts_sharded_cluster_parts_sharing_its_name,
            rejects_cluster_of_missing_group,
            hides_cluster_behind_another_group,
            lists_clusters_in_pages_with_total,
            delete_cluster_removes_parts_configs_keys_and_intents,
            rejects_delete_cluster_through_another_group,
            update_backup_configs_writes_configs_and_audit,
            rejects_update_of_missing_config_and_changes_nothing,
            lists_backup_configs_in_pages,
            one_intent_per_cluster,
            intent_names_the_current_key_or_is_refused,
            accepts_intent_round_trip_and_delete,
            commit_key_change_installs_first_key,
            commit_key_change_rotates_and_keeps_history,
            commit_key_change_rejects_stale_expected_key,
            commit_key_change_rejects_first_key_when_one_exists,
            commit_key_change_rejects_unknown_intent_and_rolls_back,
            commit_key_change_rejects_records_of_another_cluster,
            commit_key_change_renews_its_lease_or_applies_not_at_all,
            accepts_user_round_trip,
            rejects_duplicate_username,
            update_and_delete_user_report_missing_users,
            lists_audit_newest_first_in_pages_and_by_group,
            audit_chain_verifies_and_counts,
            rejects_duplicate_audit_event_id,
            accepts_snapshot_commit_round_trip,
            accepts_empty_snapshot,
            snapshots_name_the_packs_of_the_chunks_they_use,
            commit_snapshot_reuses_stored_chunks,
            commit_snapshot_rejects_stored_chunk_as_new_and_rolls_back,
            commit_snapshot_rejects_reference_to_missing_chunk_and_rolls_back,
            commit_snapshot_rejects_records_that_do_not_belong,
            commit_snapshot_of_many_chunks_crosses_batches,
            record_chunks_before_a_commit_that_uses_them,
            commit_snapshot_checks_the_lengths_a_client_lists,
            lists_snapshots_newest_first_in_pages,
            update_snapshot_writes_expiry_and_do_not_delete_only,
            hides_snapshot_behind_another_cluster,
            delete_snapshot_keeps_chunks_until_collected,
            collect_garbage_keeps_packs_in_use_whole,
            collect_garbage_removes_recorded_packs_left_empty,
            collect_garbage_leaves_other_clusters_alone,
            rejects_commit_using_collected_chunk,
            rejects_delete_cluster_with_snapshots_or_uncollected_chunks,
            accepts_restore_job_round_trip,
            rejects_restore_job_of_missing_snapshot,
            take_restore_download_counts_to_the_limit,
            expired_lease_can_be_taken_by_another_holder,
            holder_renews_its_lease,
            release_frees_only_the_holders_lease,
            live_leases_lists_unexpired_leases_by_exact_prefix,
            delete_expired_leases_drops_only_expired_ones_of_the_prefix,
            rejects_unbounded_lease_and_secret_input,
        ]);
    };
}

conformance!(sqlite: SqliteBackend);
conformance!(postgres: PgBackend);

/// Records to store, with times already at the store's precision.
mod fixtures {
    use super::*;

    pub fn now() -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }

    pub fn group(name: &str) -> Group {
        Group {
            id: ObjectId::new(),
            name: name.into(),
            org_id: ObjectId::new(),
            created: now(),
        }
    }

    pub fn replica_set(group: &Group, name: &str) -> Cluster {
        Cluster {
            id: ObjectId::new(),
            group_id: group.id,
            cluster_name: name.into(),
            type_name: ClusterType::ReplicaSet,
            replica_set_name: Some(format!("{name}-rs")),
            shard_name: None,
            parent_cluster_id: None,
            created: now(),
        }
    }

    /// A whole sharded cluster, its shards and its config server replica set, created a
    /// millisecond apart in that order (the order the store lists them in).
    pub fn sharded(group: &Group, name: &str, shards: usize) -> Vec<Cluster> {
        let mut all = sharded_same_time(group, name, shards);
        let base = now();
        for (n, c) in (0i64..).zip(all.iter_mut()) {
            c.created = base + time::Duration::milliseconds(n);
        }
        all
    }

    fn sharded_same_time(group: &Group, name: &str, shards: usize) -> Vec<Cluster> {
        let whole = Cluster {
            id: ObjectId::new(),
            group_id: group.id,
            cluster_name: name.into(),
            type_name: ClusterType::ShardedReplicaSet,
            replica_set_name: None,
            shard_name: None,
            parent_cluster_id: None,
            created: now(),
        };
        let mut all = vec![whole.clone()];
        for i in 0..shards {
            all.push(Cluster {
                id: ObjectId::new(),
                group_id: group.id,
                cluster_name: name.into(),
                type_name: ClusterType::ReplicaSet,
                replica_set_name: Some(format!("{name}-shard-{i}")),
                shard_name: Some(format!("{name}-shard-{i}")),
                parent_cluster_id: Some(whole.id),
                created: now(),
            });
        }
        all.push(Cluster {
            id: ObjectId::new(),
            group_id: group.id,
            cluster_name: name.into(),
            type_name: ClusterType::ConfigServerReplicaSet,
            replica_set_name: Some(format!("{name}-config")),
            shard_name: None,
            parent_cluster_id: Some(whole.id),
            created: now(),
        });
        all
    }

    pub fn config(cluster: &Cluster) -> BackupConfig {
        BackupConfig::new_inactive(cluster.group_id, cluster.id)
    }

    pub fn configs(clusters: &[Cluster]) -> Vec<BackupConfig> {
        clusters.iter().map(config).collect()
    }

    pub fn intent(cluster: &Cluster, previous: Option<&str>) -> KeyIntent {
        KeyIntent {
            id: ObjectId::new(),
            cluster_id: cluster.id,
            key_name: format!("headlock-{}-{}", cluster.id, ObjectId::new()),
            previous_uid: previous.map(KmipUid::from),
            new_uid: None,
            phase: IntentPhase::Pending,
            rotation_type: if previous.is_some() {
                RotationType::Manual
            } else {
                RotationType::Initial
            },
            requested_by: "alice".into(),
            created: now(),
        }
    }

    pub fn key(cluster: &Cluster, uid: &str) -> MasterKeyRecord {
        MasterKeyRecord {
            cluster_id: cluster.id,
            kmip_uid: uid.into(),
            kmip_server: "127.0.0.1:5696".into(),
            kmip_name: format!("headlock-{uid}"),
            created: now(),
            retired: None,
            rotation_type: RotationType::Manual,
            requested_by: "alice".into(),
        }
    }

    pub fn data_key(cluster: &Cluster, uid: &str, fill: u8) -> DataKeyRecord {
        DataKeyRecord {
            id: ObjectId::new(),
            cluster_id: cluster.id,
            wrapped: vec![fill; 60],
            master_key_uid: uid.into(),
            created: now(),
        }
    }

    pub fn event(group: Option<&Group>, detail: &str) -> AuditEvent {
        AuditEvent {
            id: ObjectId::new(),
            created: now(),
            event_type: "BACKUP_CONFIG_CHANGED".into(),
            group_id: group.map(|g| g.id),
            cluster_id: None,
            username: Some("alice".into()),
            remote_address: Some("192.0.2.7".into()),
            outcome: "SUCCESS".into(),
            old_key_uid: None,
            new_key_uid: None,
            detail: Some(detail.into()),
        }
    }

    pub fn change(
        intent: &KeyIntent,
        cluster: &Cluster,
        expected: Option<&str>,
        uid: &str,
        data_keys: Vec<DataKeyRecord>,
    ) -> KeyChange {
        let mut config = config(cluster);
        config.encryption_enabled = true;
        config.status = BackupStatus::Started;
        let mut audit = event(None, &format!("rotate to {uid}"));
        audit.event_type = "RS_ROTATE_MASTER_KEY_AUDIT".into();
        audit.group_id = Some(cluster.group_id);
        audit.cluster_id = Some(cluster.id);
        audit.old_key_uid = expected.map(KmipUid::from);
        audit.new_key_uid = Some(uid.into());
        KeyChange {
            intent_id: intent.id,
            cluster_id: cluster.id,
            expected_current: expected.map(KmipUid::from),
            new_key: key(cluster, uid),
            retired_at: now(),
            data_keys,
            data_keys_read: None,
            configs: vec![config],
            audit,
            lease: None,
        }
    }

    pub fn user(name: &str) -> User {
        User {
            id: ObjectId::new(),
            username: name.into(),
            ha1_md5: vec![0x11; 16],
            ha1_sha256: vec![0x22; 32],
            roles: vec![RoleAssignment {
                role: Role::GlobalOwner,
                group_id: None,
            }],
            access_list: vec![],
            created: now(),
        }
    }

    /// A group, stored.
    pub async fn stored_group(s: &dyn MetadataStore, name: &str) -> Group {
        let g = group(name);
        s.insert_group(&g).await.unwrap();
        g
    }

    /// A replica set of `g` and its inactive config, stored.
    pub async fn stored_replica_set(s: &dyn MetadataStore, g: &Group, name: &str) -> Cluster {
        let c = replica_set(g, name);
        s.insert_clusters(std::slice::from_ref(&c), &[config(&c)])
            .await
            .unwrap();
        c
    }

    /// A [`sharded`] cluster of `g` and the inactive configs of all its parts, stored.
    pub async fn stored_sharded(
        s: &dyn MetadataStore,
        g: &Group,
        name: &str,
        shards: usize,
    ) -> Vec<Cluster> {
        let all = sharded(g, name, shards);
        s.insert_clusters(&all, &configs(&all)).await.unwrap();
        all
    }

    /// A group with one replica set and its inactive config, stored.
    pub async fn stored_cluster(s: &dyn MetadataStore, group_name: &str) -> (Group, Cluster) {
        let g = stored_group(s, group_name).await;
        let c = stored_replica_set(s, &g, "rs0").await;
        (g, c)
    }

    /// A first master key `uid` (with one data key) committed for `c`; its intent, left
    /// in place, is returned.
    pub async fn first_key(s: &dyn MetadataStore, c: &Cluster, uid: &str) -> KeyIntent {
        let i = intent(c, None);
        s.insert_intent(&i).await.unwrap();
        s.commit_key_change(&change(&i, c, None, uid, vec![data_key(c, uid, 1)]))
            .await
            .unwrap();
        i
    }

    /// [`stored_cluster`] with a first master key `uid` committed (intent deleted after).
    pub async fn keyed_cluster(s: &dyn MetadataStore, uid: &str) -> (Group, Cluster) {
        let (g, c) = stored_cluster(s, "keyed").await;
        let i = first_key(s, &c, uid).await;
        s.delete_intent(i.id).await.unwrap();
        (g, c)
    }

    // ----- snapshots

    /// A chunk id made from a number (distinct numbers, distinct ids).
    pub fn chunk_id(n: u32) -> ChunkId {
        let mut b = [0xa5u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        ChunkId(b)
    }

    /// A complete stream snapshot of `cluster`, with sizes past 32 bits.
    pub fn snapshot(cluster: &Cluster) -> SnapshotRecord {
        SnapshotRecord {
            id: ObjectId::new(),
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            created: now(),
            kind: SnapshotKind::Stream,
            data_size_bytes: 5 << 32,
            stored_size_bytes: 3 << 32,
            file_size_bytes: 4 << 32,
            expires: Some(now() + time::Duration::days(7)),
            do_not_delete: false,
            data_key_id: ObjectId::new(),
        }
    }

    /// Where chunk `n` lives when `snap` stores it in `pack` (offsets past 32 bits).
    pub fn location(snap: &SnapshotRecord, pack: ObjectId, n: u32) -> ChunkLocation {
        ChunkLocation {
            cluster_id: snap.cluster_id,
            chunk_id: chunk_id(n),
            pack_id: pack,
            offset: (1 << 33) + 8 + u64::from(n) * 1000,
            length: 900 + n,
            plaintext_length: 1_048_576 + n,
            stored_by: snap.id,
        }
    }

    /// `snap` storing chunks `new` in `pack` and using them and `reused`.
    pub fn commit(
        snap: &SnapshotRecord,
        pack: ObjectId,
        new: std::ops::Range<u32>,
        reused: &[u32],
    ) -> SnapshotCommit {
        SnapshotCommit {
            snapshot: snap.clone(),
            new_chunks: new.clone().map(|n| location(snap, pack, n)).collect(),
            uses: new.chain(reused.iter().copied()).map(chunk_id).collect(),
            lengths: Vec::new(),
        }
    }

    /// A snapshot of `cluster` committed with [`commit`], as stored: its stored size is
    /// the record lengths of its new chunks, counted by the store.
    pub async fn committed(
        s: &dyn MetadataStore,
        cluster: &Cluster,
        pack: ObjectId,
        new: std::ops::Range<u32>,
        reused: &[u32],
    ) -> SnapshotRecord {
        let mut snap = snapshot(cluster);
        let commit = commit(&snap, pack, new, reused);
        let stored = s.commit_snapshot(&commit).await.unwrap();
        let lengths: u64 = commit.new_chunks.iter().map(|c| u64::from(c.length)).sum();
        assert_eq!(stored, lengths);
        snap.stored_size_bytes = stored;
        snap
    }

    /// The locations of chunks `ids` of a cluster, in chunk id order.
    pub async fn located(
        s: &dyn MetadataStore,
        cluster: &Cluster,
        ids: &[ChunkId],
    ) -> Vec<ChunkLocation> {
        let mut found = s.chunk_locations(cluster.id, ids).await.unwrap();
        found.sort_by_key(|l| l.chunk_id);
        found
    }

    /// The packs a snapshot uses.
    pub async fn packs_of(s: &dyn MetadataStore, snap: &SnapshotRecord) -> Vec<ObjectId> {
        s.snapshot_packs(snap.id).await.unwrap()
    }

    /// Ids, sorted.
    pub fn sorted(mut ids: Vec<ObjectId>) -> Vec<ObjectId> {
        ids.sort_unstable();
        ids
    }

    /// A cluster's chunk ids, sorted.
    pub async fn stored(s: &dyn MetadataStore, cluster: &Cluster) -> Vec<ChunkId> {
        let mut ids = s.chunk_ids(cluster.id).await.unwrap();
        ids.sort_unstable();
        ids
    }

    /// Chunk ids of numbers, sorted.
    pub fn ids(numbers: impl IntoIterator<Item = u32>) -> Vec<ChunkId> {
        let mut ids: Vec<ChunkId> = numbers.into_iter().map(chunk_id).collect();
        ids.sort_unstable();
        ids
    }

    /// A restore job of `snap` allowing `max` downloads.
    pub fn restore_job(snap: &SnapshotRecord, max: u32) -> RestoreJob {
        RestoreJob {
            id: ObjectId::new(),
            group_id: snap.group_id,
            cluster_id: snap.cluster_id,
            snapshot_id: snap.id,
            created: now(),
            expires: now() + time::Duration::hours(1),
            token_sha256: vec![0x5a; 32],
            max_downloads: max,
            downloads: 0,
            requested_by: "alice".into(),
        }
    }
}

mod suite {
    use super::fixtures::*;
    use super::*;

    fn page(num: u32, size: u32) -> Page {
        Page { num, size }
    }

    /// The rule a call broke (panics unless it is a conflict).
    fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> StoreConflict {
        match r {
            Err(StoreError::Conflict(c)) => c,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    /// Whether a call broke a uniqueness rule no caller names (a record id taken twice).
    fn is_other_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::Conflict(StoreConflict::Other(_))))
    }

    fn is_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::NotFound(_)))
    }

    // ----- groups

    pub async fn accepts_group_round_trip_by_id_and_name(s: &dyn MetadataStore) {
        let g = stored_group(s, "payments").await;
        assert_eq!(s.group(g.id).await.unwrap(), Some(g.clone()));
        assert_eq!(s.group_by_name("payments").await.unwrap(), Some(g));
        assert_eq!(s.group(ObjectId::new()).await.unwrap(), None);
        assert_eq!(s.group_by_name("Payments").await.unwrap(), None);
    }

    pub async fn rejects_duplicate_group_name(s: &dyn MetadataStore) {
        let first = stored_group(s, "payments").await;
        let err = s.insert_group(&group("payments")).await;
        assert_eq!(conflict(err), StoreConflict::GroupName);
        let (all, total) = s.list_groups(Page::default()).await.unwrap();
        assert_eq!((all, total), (vec![first], 1));
    }

    pub async fn lists_groups_oldest_first_in_pages(s: &dyn MetadataStore) {
        let base = now();
        let mut groups = Vec::new();
        // Inserted newest first, so insertion order cannot pass for creation order.
        for i in (0..5i64).rev() {
            let mut g = group(&format!("g{i}"));
            g.created = base + time::Duration::seconds(i);
            s.insert_group(&g).await.unwrap();
            groups.push(g);
        }
        groups.reverse();
        assert_eq!(
            s.list_groups(page(1, 2)).await.unwrap(),
            (groups[0..2].to_vec(), 5)
        );
        assert_eq!(
            s.list_groups(page(3, 2)).await.unwrap(),
            (groups[4..5].to_vec(), 5)
        );
        assert_eq!(s.list_groups(page(4, 2)).await.unwrap(), (vec![], 5));
    }

    // ----- clusters and configs

    pub async fn accepts_cluster_and_config_round_trip(s: &dyn MetadataStore) {
        let g = stored_group(s, "g").await;
        let c = replica_set(&g, "rs0");
        let mut cfg = config(&c);
        cfg.excluded_namespaces = vec!["test.tmp".into(), "quoted\"db.c".into()];
        cfg.included_namespaces = vec![];
        cfg.auth_mechanism = AuthMechanism::MongodbX509;
        cfg.ssl_enabled = true;
        s.insert_clusters(std::slice::from_ref(&c), std::slice::from_ref(&cfg))
            .await
            .unwrap();
        assert_eq!(s.cluster(g.id, c.id).await.unwrap(), Some(c.clone()));
        assert_eq!(s.cluster_any_group(c.id).await.unwrap(), Some(c.clone()));
        assert_eq!(
            s.backup_config(g.id, c.id).await.unwrap(),
            Some(cfg.clone())
        );
        assert_eq!(
            s.cluster_with_config(g.id, c.id).await.unwrap(),
            Some((c.clone(), cfg))
        );
        assert_eq!(s.cluster_count(g.id).await.unwrap(), 1);
        // A part of a sharded cluster (a parent id, a shard name) reads back whole too.
        let parts = stored_sharded(s, &g, "sh", 1).await;
        for part in &parts {
            let config = s.backup_config(g.id, part.id).await.unwrap().unwrap();
            assert_eq!(
                s.cluster_with_config(g.id, part.id).await.unwrap(),
                Some((part.clone(), config))
            );
        }
        assert_eq!(
            s.cluster_with_config(g.id, ObjectId::new()).await.unwrap(),
            None
        );
    }

    pub async fn rejects_duplicate_cluster_name_in_group(s: &dyn MetadataStore) {
        let (g, first) = stored_cluster(s, "g").await;
        // The same name again, in a batch with a fresh name: nothing of the batch stays.
        let fresh = replica_set(&g, "fresh");
        let dup = replica_set(&g, "rs0");
        let batch = [fresh.clone(), dup.clone()];
        assert_eq!(
            conflict(s.insert_clusters(&batch, &configs(&batch)).await),
            StoreConflict::ClusterName
        );
        assert_eq!(s.cluster(g.id, fresh.id).await.unwrap(), None);
        assert_eq!(s.backup_config(g.id, fresh.id).await.unwrap(), None);
        assert_eq!(
            s.list_clusters(g.id, None, Page::default()).await.unwrap(),
            (vec![first], 1)
        );
        // The same name in another group is fine.
        let other = stored_group(s, "other").await;
        stored_replica_set(s, &other, "rs0").await;
    }

    pub async fn accepts_sharded_cluster_parts_sharing_its_name(s: &dyn MetadataStore) {
        let g = stored_group(s, "g").await;
        let mut all = sharded(&g, "shop", 2);
        let whole = all[0].clone();
        let parts: Vec<Cluster> = all[1..].to_vec();
        // Parts first in the batch: the store must still insert the whole cluster first.
        all.rotate_left(1);
        s.insert_clusters(&all, &configs(&all)).await.unwrap();
        assert_eq!(s.cluster_parts(whole.id).await.unwrap(), parts);
        assert_eq!(
            s.list_clusters(g.id, Some(whole.id), Page::default())
                .await
                .unwrap(),
            (parts.clone(), 3)
        );
        assert_eq!(
            s.list_clusters(g.id, None, Page::default())
                .await
                .unwrap()
                .1,
            4
        );
        assert_eq!(s.cluster_count(g.id).await.unwrap(), 1);
        // A second top-level "shop" is still refused.
        let again = replica_set(&g, "shop");
        assert_eq!(
            conflict(s.insert_clusters(std::slice::from_ref(&again), &[]).await),
            StoreConflict::ClusterName
        );
    }

    pub async fn rejects_cluster_of_missing_group(s: &dyn MetadataStore) {
        let ghost = group("never-stored");
        let c = replica_set(&ghost, "rs0");
        assert!(is_not_found(
            s.insert_clusters(std::slice::from_ref(&c), &[config(&c)])
                .await
        ));
        assert_eq!(s.cluster_any_group(c.id).await.unwrap(), None);
    }

    pub async fn hides_cluster_behind_another_group(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_group(s, "other").await;
        assert_eq!(s.cluster(other.id, c.id).await.unwrap(), None);
        assert_eq!(s.backup_config(other.id, c.id).await.unwrap(), None);
        assert_eq!(s.cluster_with_config(other.id, c.id).await.unwrap(), None);
        assert_eq!(
            s.cluster_any_group(c.id).await.unwrap().map(|c| c.group_id),
            Some(g.id)
        );
    }

    pub async fn lists_clusters_in_pages_with_total(s: &dyn MetadataStore) {
        let g = stored_group(s, "g").await;
        let base = now();
        let clusters: Vec<Cluster> = (0..5i64)
            .map(|i| {
                let mut c = replica_set(&g, &format!("rs{i}"));
                c.created = base + time::Duration::seconds(i);
                c
            })
            .collect();
        let mut reversed = clusters.clone();
        reversed.reverse();
        s.insert_clusters(&reversed, &configs(&reversed))
            .await
            .unwrap();
        assert_eq!(
            s.list_clusters(g.id, None, page(2, 2)).await.unwrap(),
            (clusters[2..4].to_vec(), 5)
        );
        let (configs_page, total) = s.list_backup_configs(g.id, page(1, 3)).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(
            configs_page
                .iter()
                .map(|c| c.cluster_id)
                .collect::<Vec<_>>(),
            vec![clusters[0].id, clusters[1].id, clusters[2].id]
        );
    }

    pub async fn delete_cluster_removes_parts_configs_keys_and_intents(s: &dyn MetadataStore) {
        let g = stored_group(s, "g").await;
        let all = stored_sharded(s, &g, "shop", 1).await;
        let shard = &all[1];
        first_key(s, shard, "k1").await;
        // A neighbour that must survive.
        let rs = stored_replica_set(s, &g, "neighbour").await;

        s.delete_cluster(g.id, all[0].id).await.unwrap();
        for c in &all {
            assert_eq!(s.cluster_any_group(c.id).await.unwrap(), None);
            assert_eq!(s.backup_config(g.id, c.id).await.unwrap(), None);
        }
        assert_eq!(s.master_keys(shard.id).await.unwrap(), vec![]);
        assert_eq!(s.data_keys(shard.id).await.unwrap(), vec![]);
        assert_eq!(s.intents().await.unwrap(), vec![]);
        assert_eq!(
            s.list_clusters(g.id, None, Page::default()).await.unwrap(),
            (vec![rs], 1)
        );
        // The name is free again.
        stored_sharded(s, &g, "shop", 1).await;
    }

    pub async fn rejects_delete_cluster_through_another_group(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_group(s, "other").await;
        assert!(is_not_found(s.delete_cluster(other.id, c.id).await));
        assert!(is_not_found(s.delete_cluster(g.id, ObjectId::new()).await));
        assert_eq!(s.cluster(g.id, c.id).await.unwrap(), Some(c));
    }

    pub async fn update_backup_configs_writes_configs_and_audit(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let mut cfg = config(&c);
        cfg.status = BackupStatus::Started;
        cfg.encryption_enabled = true;
        cfg.storage_engine_name = "IN_MEMORY".into();
        cfg.included_namespaces = vec!["a.b".into()];
        let e = event(Some(&g), "started");
        s.update_backup_configs(std::slice::from_ref(&cfg), std::slice::from_ref(&e))
            .await
            .unwrap();
        assert_eq!(s.backup_config(g.id, c.id).await.unwrap(), Some(cfg));
        assert_eq!(
            s.list_audit(Some(g.id), Page::default()).await.unwrap(),
            (vec![e], 1)
        );
    }

    pub async fn rejects_update_of_missing_config_and_changes_nothing(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let mut cfg = config(&c);
        cfg.status = BackupStatus::Started;
        let ghost = replica_set(&g, "ghost");
        let batch = [cfg, config(&ghost)];
        assert!(is_not_found(
            s.update_backup_configs(&batch, &[event(Some(&g), "x")])
                .await
        ));
        assert_eq!(
            s.backup_config(g.id, c.id).await.unwrap().map(|c| c.status),
            Some(BackupStatus::Inactive)
        );
        assert_eq!(s.list_audit(None, Page::default()).await.unwrap().1, 0);
        assert_eq!(s.verify_audit_chain().await.unwrap(), 0);
    }

    pub async fn lists_backup_configs_in_pages(s: &dyn MetadataStore) {
        let g = stored_group(s, "g").await;
        let all = stored_sharded(s, &g, "shop", 3).await;
        let (first, total) = s.list_backup_configs(g.id, page(1, 4)).await.unwrap();
        let (second, _) = s.list_backup_configs(g.id, page(2, 4)).await.unwrap();
        assert_eq!((first.len(), second.len(), total), (4, 1, 5));
        let mut seen: Vec<ObjectId> = first.iter().chain(&second).map(|c| c.cluster_id).collect();
        let mut expected: Vec<ObjectId> = all.iter().map(|c| c.id).collect();
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected);
        let other = stored_group(s, "other").await;
        assert_eq!(
            s.list_backup_configs(other.id, Page::default())
                .await
                .unwrap(),
            (vec![], 0)
        );
    }

    // ----- intents

    pub async fn one_intent_per_cluster(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let first = intent(&c, None);
        s.insert_intent(&first).await.unwrap();
        assert_eq!(
            conflict(s.insert_intent(&intent(&c, None)).await),
            StoreConflict::KeyChangeInFlight
        );
        assert_eq!(s.intents().await.unwrap(), vec![first.clone()]);
        // Another cluster may have its own; once the first is gone, a new one is fine.
        let other = stored_replica_set(s, &g, "rs1").await;
        s.insert_intent(&intent(&other, None)).await.unwrap();
        s.delete_intent(first.id).await.unwrap();
        s.insert_intent(&intent(&c, None)).await.unwrap();
        // An intent for a cluster that does not exist is refused.
        let ghost = replica_set(&g, "ghost");
        assert!(is_not_found(s.insert_intent(&intent(&ghost, None)).await));
    }

    /// An intent is recorded only while the key it starts from is current.
    pub async fn intent_names_the_current_key_or_is_refused(s: &dyn MetadataStore) {
        let (_, c) = keyed_cluster(s, "k1").await;
        for stale in [intent(&c, None), intent(&c, Some("k0"))] {
            let err = s.insert_intent(&stale).await.unwrap_err();
            assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        }
        assert_eq!(s.intents().await.unwrap(), vec![]);
        let current = intent(&c, Some("k1"));
        s.insert_intent(&current).await.unwrap();
        assert_eq!(s.intents().await.unwrap(), vec![current.clone()]);
        // With a change in flight, another from the current key meets the unique index.
        assert_eq!(
            conflict(s.insert_intent(&intent(&c, Some("k1"))).await),
            StoreConflict::KeyChangeInFlight
        );
        // Once the cluster moves on, an intent from its old key is refused.
        s.commit_key_change(&change(
            &current,
            &c,
            Some("k1"),
            "k2",
            vec![data_key(&c, "k2", 2)],
        ))
        .await
        .unwrap();
        s.delete_intent(current.id).await.unwrap();
        let err = s.insert_intent(&intent(&c, Some("k1"))).await.unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        s.insert_intent(&intent(&c, Some("k2"))).await.unwrap();
        // A cluster with no key takes only an intent without a previous key.
        let (_, fresh) = stored_cluster(s, "fresh").await;
        let err = s
            .insert_intent(&intent(&fresh, Some("k2")))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        s.insert_intent(&intent(&fresh, None)).await.unwrap();
    }

    pub async fn accepts_intent_round_trip_and_delete(s: &dyn MetadataStore) {
        let (g, c1) = stored_cluster(s, "g").await;
        let c2 = stored_replica_set(s, &g, "rs1").await;
        let mut older = intent(&c2, None);
        older.created = now() - time::Duration::minutes(1);
        let mut newer = intent(&c1, None);
        s.insert_intent(&newer).await.unwrap();
        s.insert_intent(&older).await.unwrap();
        assert_eq!(
            s.intents().await.unwrap(),
            vec![older.clone(), newer.clone()]
        );

        // A phase and new uid are stored as given (reconciliation reads what earlier
        // releases wrote, such as NEW_KEY_ACTIVE).
        s.delete_intent(newer.id).await.unwrap();
        newer.phase = IntentPhase::NewKeyActive;
        newer.new_uid = Some("k9".into());
        s.insert_intent(&newer).await.unwrap();
        assert_eq!(
            s.intents().await.unwrap(),
            vec![older.clone(), newer.clone()]
        );

        s.delete_intent(older.id).await.unwrap();
        // Deleting again is not an error (reconciliation may repeat itself).
        s.delete_intent(older.id).await.unwrap();
        assert_eq!(s.intents().await.unwrap(), vec![newer]);
    }

    // ----- keys

    pub async fn commit_key_change_installs_first_key(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let i = intent(&c, None);
        s.insert_intent(&i).await.unwrap();
        let dks = vec![data_key(&c, "k1", 1), data_key(&c, "k1", 2)];
        let ch = change(&i, &c, None, "k1", dks.clone());
        s.commit_key_change(&ch).await.unwrap();

        assert_eq!(
            s.current_master_key(c.id).await.unwrap(),
            Some(ch.new_key.clone())
        );
        assert_eq!(s.master_keys(c.id).await.unwrap(), vec![ch.new_key.clone()]);
        let mut stored = s.data_keys(c.id).await.unwrap();
        stored.sort_by_key(|d| d.wrapped.clone());
        assert_eq!(stored, dks);
        assert_eq!(
            s.backup_config(g.id, c.id).await.unwrap(),
            Some(ch.configs[0].clone())
        );
        let after = s.intents().await.unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(
            (
                after[0].phase,
                after[0].new_uid.as_ref().map(KmipUid::as_str)
            ),
            (IntentPhase::Committed, Some("k1"))
        );
        assert_eq!(
            s.list_audit(Some(g.id), Page::default()).await.unwrap(),
            (vec![ch.audit], 1)
        );
        assert_eq!(s.verify_audit_chain().await.unwrap(), 1);
    }

    pub async fn commit_key_change_rotates_and_keeps_history(s: &dyn MetadataStore) {
        let (_, c) = keyed_cluster(s, "k1").await;
        let first = s.current_master_key(c.id).await.unwrap().unwrap();
        let mut previous = "k1".to_owned();
        for uid in ["k2", "k3"] {
            let i = intent(&c, Some(&previous));
            s.insert_intent(&i).await.unwrap();
            let dks = vec![data_key(&c, uid, 7)];
            s.commit_key_change(&change(&i, &c, Some(&previous), uid, dks.clone()))
                .await
                .unwrap();
            s.delete_intent(i.id).await.unwrap();
            assert_eq!(
                s.data_keys(c.id).await.unwrap(),
                dks,
                "data keys replaced, not added"
            );
            previous = uid.to_owned();
        }
        let history = s.master_keys(c.id).await.unwrap();
        let uids: Vec<&str> = history.iter().map(|k| k.kmip_uid.as_str()).collect();
        assert_eq!(uids, ["k3", "k2", "k1"]);
        assert_eq!(history[0].retired, None);
        assert!(history[1].retired.is_some() && history[2].retired.is_some());
        assert!(history[2].retired.unwrap() >= first.created);
        assert_eq!(
            s.current_master_key(c.id)
                .await
                .unwrap()
                .map(|k| k.kmip_uid),
            Some("k3".into())
        );
        assert_eq!(s.verify_audit_chain().await.unwrap(), 3);
    }

    pub async fn commit_key_change_rejects_stale_expected_key(s: &dyn MetadataStore) {
        let (g, c) = keyed_cluster(s, "k1").await;
        let keys_before = s.data_keys(c.id).await.unwrap();
        let config_before = s.backup_config(g.id, c.id).await.unwrap();
        let i = intent(&c, Some("k1"));
        s.insert_intent(&i).await.unwrap();
        let err = s
            .commit_key_change(&change(
                &i,
                &c,
                Some("k0"),
                "k2",
                vec![data_key(&c, "k2", 9)],
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        // Nothing moved.
        assert_eq!(s.master_keys(c.id).await.unwrap().len(), 1);
        assert_eq!(
            s.current_master_key(c.id)
                .await
                .unwrap()
                .map(|k| k.kmip_uid),
            Some("k1".into())
        );
        assert_eq!(s.data_keys(c.id).await.unwrap(), keys_before);
        assert_eq!(s.backup_config(g.id, c.id).await.unwrap(), config_before);
        assert_eq!(s.intents().await.unwrap(), vec![i]);
        assert_eq!(s.verify_audit_chain().await.unwrap(), 1);
    }

    pub async fn commit_key_change_rejects_first_key_when_one_exists(s: &dyn MetadataStore) {
        let (_, c) = keyed_cluster(s, "k1").await;
        let i = intent(&c, Some("k1"));
        s.insert_intent(&i).await.unwrap();
        let err = s
            .commit_key_change(&change(&i, &c, None, "k2", vec![]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        assert_eq!(s.master_keys(c.id).await.unwrap().len(), 1);
    }

    pub async fn commit_key_change_rejects_unknown_intent_and_rolls_back(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        // The intent was never written: the change fails at its last steps, and the
        // writes before them (key, data keys, config) must be rolled back.
        let i = intent(&c, None);
        let err = s
            .commit_key_change(&change(&i, &c, None, "k1", vec![data_key(&c, "k1", 1)]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        assert_eq!(s.current_master_key(c.id).await.unwrap(), None);
        assert_eq!(s.data_keys(c.id).await.unwrap(), vec![]);
        assert_eq!(s.backup_config(g.id, c.id).await.unwrap(), Some(config(&c)));
        assert_eq!(s.verify_audit_chain().await.unwrap(), 0);
        // And a cluster that does not exist is NotFound too.
        let ghost = replica_set(&g, "ghost");
        let err = s
            .commit_key_change(&change(&i, &ghost, None, "k1", vec![]))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }

    /// A change that names its lease applies only while the lease is the caller's, and
    /// renews it in the same transaction.
    pub async fn commit_key_change_renews_its_lease_or_applies_not_at_all(s: &dyn MetadataStore) {
        let (g, c) = keyed_cluster(s, "k1").await;
        let config_before = s.backup_config(g.id, c.id).await.unwrap();
        let i = intent(&c, Some("k1"));
        s.insert_intent(&i).await.unwrap();
        let t = now();
        let ttl = Duration::from_secs(30);
        let name = format!("intent:{}", i.id);
        assert!(s.acquire_lease(&name, "node-a", t, ttl).await.unwrap());
        let at = |seconds: i64| t + time::Duration::seconds(seconds);
        let mut ch = change(&i, &c, Some("k1"), "k2", vec![data_key(&c, "k2", 9)]);

        // Node b's: refused, and nothing moved.
        ch.lease = Some(LeaseRenewal {
            name: name.clone(),
            holder: "node-b".into(),
            now: at(10),
            ttl,
        });
        let err = s.commit_key_change(&ch).await.unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err:?}");
        assert_eq!(s.master_keys(c.id).await.unwrap().len(), 1);
        assert_eq!(s.backup_config(g.id, c.id).await.unwrap(), config_before);
        assert_eq!(s.intents().await.unwrap(), vec![i.clone()]);

        // Node a's, 20 s on: applied, and the lease now lasts until 50 s.
        ch.lease = Some(LeaseRenewal {
            name: name.clone(),
            holder: "node-a".into(),
            now: at(20),
            ttl,
        });
        s.commit_key_change(&ch).await.unwrap();
        assert_eq!(
            s.current_master_key(c.id)
                .await
                .unwrap()
                .map(|k| k.kmip_uid),
            Some("k2".into())
        );
        let live = s.live_leases(&name, at(45)).await.unwrap();
        assert_eq!(
            live,
            vec![Lease {
                name,
                holder: "node-a".into(),
                expires: at(50),
            }]
        );
    }

    pub async fn commit_key_change_rejects_records_of_another_cluster(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_replica_set(s, &g, "rs1").await;
        let i = intent(&c, None);
        s.insert_intent(&i).await.unwrap();
        let foreign_key = change(&i, &c, None, "k1", vec![data_key(&other, "k1", 1)]);
        assert!(matches!(
            s.commit_key_change(&foreign_key).await,
            Err(StoreError::Precondition(_))
        ));
        let wrong_wrap = change(&i, &c, None, "k1", vec![data_key(&c, "k0", 1)]);
        assert!(matches!(
            s.commit_key_change(&wrong_wrap).await,
            Err(StoreError::Precondition(_))
        ));
        assert_eq!(s.current_master_key(c.id).await.unwrap(), None);
    }

    pub async fn concurrent_commits_from_one_key_let_exactly_one_win(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = keyed_cluster(s, "k1").await;
        let i = intent(&c, Some("k1"));
        s.insert_intent(&i).await.unwrap();
        let mut tasks = Vec::new();
        for n in 0..20 {
            let store = store.clone();
            let uid = format!("k2-{n}");
            let ch = change(&i, &c, Some("k1"), &uid, vec![data_key(&c, &uid, n)]);
            tasks.push(tokio::spawn(async move {
                (uid, store.commit_key_change(&ch).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (uid, result) = task.await.unwrap();
            match result {
                Ok(()) => winners.push(uid),
                Err(StoreError::Precondition(_)) => {}
                Err(other) => panic!("{uid}: expected success or Precondition, got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let current = s.current_master_key(c.id).await.unwrap().unwrap();
        assert_eq!(current.kmip_uid, winners[0]);
        assert_eq!(s.master_keys(c.id).await.unwrap().len(), 2);
        let dks = s.data_keys(c.id).await.unwrap();
        assert_eq!(dks.len(), 1);
        assert_eq!(dks[0].master_key_uid, winners[0]);
        assert_eq!(s.verify_audit_chain().await.unwrap(), 2);
    }

    // ----- users

    pub async fn accepts_user_round_trip(s: &dyn MetadataStore) {
        let g = ObjectId::new();
        let mut u = user("alice");
        u.roles = vec![
            RoleAssignment {
                role: Role::GroupBackupAdmin,
                group_id: Some(g),
            },
            RoleAssignment {
                role: Role::GlobalReadOnly,
                group_id: None,
            },
        ];
        u.access_list = vec!["10.0.0.0/8".into(), "192.0.2.1".into()];
        s.insert_user(&u).await.unwrap();
        let bob = user("bob");
        s.insert_user(&bob).await.unwrap();
        assert_eq!(s.user_by_name("alice").await.unwrap(), Some(u.clone()));
        assert_eq!(s.user_by_name("carol").await.unwrap(), None);
        let mut all = s.list_users().await.unwrap();
        all.sort_by(|a, b| a.username.cmp(&b.username));
        assert_eq!(all, vec![u, bob]);
    }

    pub async fn rejects_duplicate_username(s: &dyn MetadataStore) {
        let first = user("alice");
        s.insert_user(&first).await.unwrap();
        let mut second = user("alice");
        second.ha1_md5 = vec![0x33; 16];
        let err = s.insert_user(&second).await;
        assert_eq!(conflict(err), StoreConflict::Username);
        assert_eq!(s.user_by_name("alice").await.unwrap(), Some(first));
    }

    pub async fn update_and_delete_user_report_missing_users(s: &dyn MetadataStore) {
        let mut u = user("alice");
        s.insert_user(&u).await.unwrap();
        u.ha1_md5 = vec![0x44; 16];
        u.ha1_sha256 = vec![0x55; 32];
        u.roles = vec![RoleAssignment {
            role: Role::GroupReadOnly,
            group_id: Some(ObjectId::new()),
        }];
        u.access_list = vec!["203.0.113.0/24".into()];
        s.update_user(&u).await.unwrap();
        assert_eq!(s.user_by_name("alice").await.unwrap(), Some(u.clone()));
        assert!(is_not_found(s.update_user(&user("bob")).await));
        assert!(is_not_found(s.delete_user("bob").await));
        s.delete_user("alice").await.unwrap();
        assert_eq!(s.user_by_name("alice").await.unwrap(), None);
        assert!(is_not_found(s.delete_user("alice").await));
    }

    // ----- audit

    pub async fn lists_audit_newest_first_in_pages_and_by_group(s: &dyn MetadataStore) {
        let g1 = group("g1");
        let g2 = group("g2");
        let mut events = Vec::new();
        for n in 0..7 {
            let e = event(
                Some(if n % 2 == 0 { &g1 } else { &g2 }),
                &format!("event {n}"),
            );
            s.append_audit(&e).await.unwrap();
            events.push(e);
        }
        let global = event(None, "global");
        s.append_audit(&global).await.unwrap();
        events.push(global);
        let newest_first: Vec<AuditEvent> = events.iter().rev().cloned().collect();
        assert_eq!(
            s.list_audit(None, page(1, 3)).await.unwrap(),
            (newest_first[0..3].to_vec(), 8)
        );
        assert_eq!(
            s.list_audit(None, page(3, 3)).await.unwrap(),
            (newest_first[6..8].to_vec(), 8)
        );
        let g1_events: Vec<AuditEvent> = newest_first
            .iter()
            .filter(|e| e.group_id == Some(g1.id))
            .cloned()
            .collect();
        assert_eq!(g1_events.len(), 4);
        assert_eq!(
            s.list_audit(Some(g1.id), page(1, 3)).await.unwrap(),
            (g1_events[0..3].to_vec(), 4)
        );
        assert_eq!(
            s.list_audit(Some(g1.id), page(2, 3)).await.unwrap(),
            (g1_events[3..4].to_vec(), 4)
        );
    }

    pub async fn audit_chain_verifies_and_counts(s: &dyn MetadataStore) {
        assert_eq!(s.verify_audit_chain().await.unwrap(), 0);
        // More than one verification batch.
        for n in 0..600 {
            s.append_audit(&event(None, &format!("e{n}")))
                .await
                .unwrap();
        }
        assert_eq!(s.verify_audit_chain().await.unwrap(), 600);
    }

    /// Removes one audit event. `$1` its id.
    const DELETE_EVENT: &str = "DELETE FROM audit_events WHERE id = $1";

    /// Appends three events; the middle one is returned.
    async fn three_events(s: &dyn MetadataStore) -> [AuditEvent; 3] {
        let events = [event(None, "one"), event(None, "two"), event(None, "three")];
        for e in &events {
            s.append_audit(e).await.unwrap();
        }
        assert_eq!(s.verify_audit_chain().await.unwrap(), 3);
        events
    }

    fn broken_at(r: Result<u64, StoreError>) -> String {
        match r {
            Err(StoreError::AuditChainBroken(at)) => at,
            other => panic!("expected AuditChainBroken, got {other:?}"),
        }
    }

    /// Runs `sql` behind the store's back (it must change one row); where verification
    /// then finds the chain broken.
    async fn broken_after(b: &impl Backend, sql: &str, args: &[&str]) -> String {
        assert_eq!(b.raw_execute(sql, args).await, 1);
        broken_at(b.store().verify_audit_chain().await)
    }

    pub async fn audit_chain_detects_tampering(b: impl Backend) {
        let [_, two, _] = three_events(&*b.store()).await;
        let sql = "UPDATE audit_events SET detail = $1 WHERE id = $2";
        let at = broken_after(&b, sql, &["nothing happened", &two.id.to_string()]).await;
        assert!(at.starts_with(&two.id.to_string()), "{at}");
    }

    pub async fn audit_chain_detects_removed_event(b: impl Backend) {
        let [_, two, three] = three_events(&*b.store()).await;
        let at = broken_after(&b, DELETE_EVENT, &[&two.id.to_string()]).await;
        assert!(at.starts_with(&three.id.to_string()), "{at}");
    }

    pub async fn audit_chain_detects_removed_tail(b: impl Backend) {
        let [_, two, three] = three_events(&*b.store()).await;
        let at = broken_after(&b, DELETE_EVENT, &[&three.id.to_string()]).await;
        assert!(at.starts_with(&two.id.to_string()), "{at}");
    }

    pub async fn rejects_duplicate_audit_event_id(s: &dyn MetadataStore) {
        let e = event(None, "once");
        s.append_audit(&e).await.unwrap();
        assert!(is_other_conflict(s.append_audit(&e).await));
        assert_eq!(s.verify_audit_chain().await.unwrap(), 1);
        s.append_audit(&event(None, "next")).await.unwrap();
        assert_eq!(s.verify_audit_chain().await.unwrap(), 2);
    }

    // ----- persistence

    pub async fn state_survives_reopen<B: Backend>(b: B) {
        let (g, c, u) = {
            let store = b.store();
            let s: &dyn MetadataStore = &*store;
            let (g, c) = keyed_cluster(s, "k1").await;
            let u = user("alice");
            s.insert_user(&u).await.unwrap();
            (g, c, u)
        };
        let b = b.reopen().await;
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        assert_eq!(s.group(g.id).await.unwrap(), Some(g.clone()));
        assert_eq!(s.cluster(g.id, c.id).await.unwrap(), Some(c.clone()));
        assert_eq!(
            s.current_master_key(c.id)
                .await
                .unwrap()
                .map(|k| k.kmip_uid),
            Some("k1".into())
        );
        assert_eq!(s.data_keys(c.id).await.unwrap().len(), 1);
        assert_eq!(s.user_by_name("alice").await.unwrap(), Some(u));
        assert_eq!(s.verify_audit_chain().await.unwrap(), 1);
        // The rules still hold after reopening, and the chain goes on.
        assert_eq!(
            conflict(s.insert_group(&group("keyed")).await),
            StoreConflict::GroupName
        );
        s.append_audit(&event(Some(&g), "after reopen"))
            .await
            .unwrap();
        assert_eq!(s.verify_audit_chain().await.unwrap(), 2);
    }

    // ----- snapshots

    fn is_precondition<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::Precondition(_)))
    }

    fn message<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(v) => panic!("expected an error, got {v:?}"),
        }
    }

    pub async fn accepts_snapshot_commit_round_trip(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let pack = ObjectId::new();
        let mut snap = snapshot(&c);
        let commit = commit(&snap, pack, 0..3, &[]);
        // The stored size is counted, whatever the record said: 900 + 901 + 902.
        assert_eq!(s.commit_snapshot(&commit).await.unwrap(), 2703);
        snap.stored_size_bytes = 2703;
        assert_eq!(s.snapshot(c.id, snap.id).await.unwrap(), Some(snap.clone()));
        assert_eq!(
            s.list_snapshots(c.id, Page::default()).await.unwrap(),
            (vec![snap.clone()], 1)
        );
        assert_eq!(s.snapshot_count(c.id).await.unwrap(), 1);
        assert_eq!(located(s, &c, &commit.uses).await, commit.new_chunks);
        assert_eq!(packs_of(s, &snap).await, vec![pack]);
        assert_eq!(stored(s, &c).await, ids(0..3));
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), vec![pack]);
    }

    pub async fn accepts_empty_snapshot(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let snap = committed(s, &c, ObjectId::new(), 0..0, &[]).await;
        assert_eq!(s.snapshot_packs(snap.id).await.unwrap(), vec![]);
        assert!(is_not_found(s.snapshot_packs(ObjectId::new()).await));
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), vec![]);
    }

    /// A snapshot names the packs of every chunk it uses, new or reused, each once,
    /// and only those.
    pub async fn snapshots_name_the_packs_of_the_chunks_they_use(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let (p1, p2, p3) = (ObjectId::new(), ObjectId::new(), ObjectId::new());
        let first = committed(s, &c, p1, 0..5, &[]).await;
        let second = committed(s, &c, p2, 5..700, &[1, 3]).await;
        let third = committed(s, &c, p3, 700..701, &[]).await;
        assert_eq!(packs_of(s, &first).await, vec![p1]);
        assert_eq!(packs_of(s, &second).await, sorted(vec![p1, p2]));
        assert_eq!(packs_of(s, &third).await, vec![p3]);
        assert_eq!(
            s.packs_in_use(c.id).await.unwrap(),
            sorted(vec![p1, p2, p3])
        );
    }

    pub async fn commit_snapshot_reuses_stored_chunks(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let (p1, p2) = (ObjectId::new(), ObjectId::new());
        let first = committed(s, &c, p1, 0..3, &[]).await;
        // Reused ids listed twice and a new one listed among them count once.
        let second = snapshot(&c);
        let mut commit = commit(&second, p2, 3..5, &[0, 1, 0, 3]);
        commit.uses.push(chunk_id(1));
        s.commit_snapshot(&commit).await.unwrap();
        let found = located(s, &c, &ids([0, 1, 3, 4])).await;
        let expected = vec![
            location(&first, p1, 0),
            location(&first, p1, 1),
            location(&second, p2, 3),
            location(&second, p2, 4),
        ];
        assert_eq!(found, expected);
        assert_eq!(packs_of(s, &first).await, vec![p1]);
        assert_eq!(packs_of(s, &second).await, sorted(vec![p1, p2]));
        assert_eq!(stored(s, &c).await, ids(0..5));
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), sorted(vec![p1, p2]));
    }

    /// An upload session's commit: the lengths its manifest lists are checked in the
    /// commit's own lookup (every bad chunk counted, the first named, nothing written),
    /// and its stored size is what the session stored, not what it reused.
    pub async fn commit_snapshot_checks_the_lengths_a_client_lists(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let earlier = committed(s, &c, ObjectId::new(), 0..2, &[]).await;
        // The session stores chunks 2..1200 (three lookup batches).
        let mut upload = snapshot(&c);
        let pack = ObjectId::new();
        let recorded: Vec<ChunkLocation> = (2..1200).map(|n| location(&upload, pack, n)).collect();
        s.record_chunks(&recorded).await.unwrap();
        let uses = ids(0..1200);
        let lengths: Vec<u32> = (0..1200)
            .map(|n| location(&upload, pack, n).plaintext_length)
            .collect();
        let with = |lengths: Vec<u32>| SnapshotCommit {
            snapshot: upload.clone(),
            new_chunks: Vec::new(),
            uses: uses.clone(),
            lengths,
        };

        // Chunk 7 listed with another length, chunk 1100 (a later batch) likewise, and
        // one chunk not stored at all: three, the first in id order named.
        let mut wrong = lengths.clone();
        wrong[7] += 1;
        wrong[1100] -= 1;
        let mut missing = with(wrong);
        missing.uses.push(chunk_id(5000));
        missing.lengths.push(1);
        let r = s.commit_snapshot(&missing).await;
        assert_eq!(
            conflict(r),
            StoreConflict::ChunksNotStored {
                first: chunk_id(7),
                count: 3
            }
        );
        assert_eq!(s.snapshot(c.id, upload.id).await.unwrap(), None);
        // Lengths that are not one per chunk, or for unsorted chunks: refused.
        assert!(is_precondition(
            &s.commit_snapshot(&with(lengths[1..].to_vec())).await
        ));
        let mut unsorted = with(lengths.clone());
        unsorted.uses.swap(0, 1);
        assert!(is_precondition(&s.commit_snapshot(&unsorted).await));

        // Right: committed; stored is the session's records (chunks 2..1200), not the
        // two chunks reused from `earlier`.
        let stored_bytes: u64 = recorded.iter().map(|l| u64::from(l.length)).sum();
        assert_eq!(
            s.commit_snapshot(&with(lengths)).await.unwrap(),
            stored_bytes
        );
        upload.stored_size_bytes = stored_bytes;
        assert_eq!(
            s.snapshot(c.id, upload.id).await.unwrap(),
            Some(upload.clone())
        );
        let mut packs = packs_of(s, &earlier).await;
        packs.push(pack);
        assert_eq!(packs_of(s, &upload).await, sorted(packs));
    }

    pub async fn record_chunks_before_a_commit_that_uses_them(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let (_, other) = stored_cluster(s, "h").await;
        let (p1, p2) = (ObjectId::new(), ObjectId::new());
        let first = committed(s, &c, p1, 0..2, &[]).await;
        // An upload session records chunks 1..700 (past one batch); chunk 1 is
        // already recorded and stays as it was.
        let upload = snapshot(&c);
        let recorded: Vec<ChunkLocation> = (1..700).map(|n| location(&upload, p2, n)).collect();
        s.record_chunks(&recorded).await.unwrap();
        s.record_chunks(&recorded[..3]).await.unwrap(); // again: nothing changes
        assert_eq!(stored(s, &c).await, ids(0..700));
        let mut asked = ids([0, 1, 5, 699, 700]);
        asked.push(chunk_id(5)); // asked twice, found once
        let mut found = s.chunk_locations(c.id, &asked).await.unwrap();
        found.sort_by_key(|l| l.chunk_id);
        assert_eq!(
            found,
            vec![
                location(&first, p1, 0),
                location(&first, p1, 1),
                location(&upload, p2, 5),
                location(&upload, p2, 699),
            ]
        );
        assert_eq!(
            s.stored_chunks(c.id, &asked).await.unwrap(),
            ids([0, 1, 5, 699])
        );
        // Another cluster has none of them.
        assert_eq!(s.chunk_locations(other.id, &asked).await.unwrap(), vec![]);
        assert_eq!(s.stored_chunks(other.id, &asked).await.unwrap(), vec![]);
        let many: Vec<ChunkId> = (0..1200).map(chunk_id).collect();
        assert_eq!(s.chunk_locations(c.id, &many).await.unwrap().len(), 700);
        // Past one batch, an id asked in two batches answered once.
        let mut twice = many.clone();
        twice.extend(ids([3, 4]));
        assert_eq!(s.stored_chunks(c.id, &twice).await.unwrap(), ids(0..700));
        // Unreferenced, they are garbage; once a commit uses some, their pack stays,
        // with every chunk of it.
        let commit = SnapshotCommit {
            snapshot: upload.clone(),
            new_chunks: Vec::new(),
            uses: ids([0, 5, 6]),
            lengths: Vec::new(),
        };
        s.commit_snapshot(&commit).await.unwrap();
        assert_eq!(packs_of(s, &upload).await, sorted(vec![p1, p2]));
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![]);
        assert_eq!(stored(s, &c).await, ids(0..700));
    }

    pub async fn commit_snapshot_rejects_stored_chunk_as_new_and_rolls_back(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let first = committed(s, &c, ObjectId::new(), 0..3, &[]).await;
        let second = snapshot(&c);
        let result = s
            .commit_snapshot(&commit(&second, ObjectId::new(), 2..6, &[]))
            .await;
        assert_eq!(conflict(result), StoreConflict::ChunkStored(chunk_id(2)));
        assert_eq!(s.snapshot(c.id, second.id).await.unwrap(), None);
        assert!(is_not_found(s.snapshot_packs(second.id).await));
        assert_eq!(s.snapshot_count(c.id).await.unwrap(), 1);
        assert_eq!(stored(s, &c).await, ids(0..3));
        assert_eq!(packs_of(s, &first).await.len(), 1);
        // The same snapshot id twice is a conflict too.
        assert!(is_other_conflict(
            s.commit_snapshot(&commit(&first, ObjectId::new(), 10..11, &[]))
                .await
        ));
        assert_eq!(stored(s, &c).await, ids(0..3));
    }

    pub async fn commit_snapshot_rejects_reference_to_missing_chunk_and_rolls_back(
        s: &dyn MetadataStore,
    ) {
        let (_, c) = stored_cluster(s, "g").await;
        let snap = snapshot(&c);
        let result = s
            .commit_snapshot(&commit(&snap, ObjectId::new(), 0..2, &[7]))
            .await;
        assert!(is_precondition(&result), "{result:?}");
        assert!(message(result).contains(&chunk_id(7).to_string()));
        assert_eq!(s.snapshot_count(c.id).await.unwrap(), 0);
        assert_eq!(s.chunk_ids(c.id).await.unwrap(), vec![]);
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), vec![]);
    }

    pub async fn commit_snapshot_rejects_records_that_do_not_belong(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_replica_set(s, &g, "rs1").await;
        let snap = snapshot(&c);
        let pack = ObjectId::new();

        let mut foreign = commit(&snap, pack, 0..2, &[]);
        foreign.new_chunks[1].cluster_id = other.id;
        assert!(is_precondition(&s.commit_snapshot(&foreign).await));

        let mut stored_by_other = commit(&snap, pack, 0..2, &[]);
        stored_by_other.new_chunks[0].stored_by = ObjectId::new();
        assert!(is_precondition(&s.commit_snapshot(&stored_by_other).await));

        let mut unused = commit(&snap, pack, 0..2, &[]);
        unused.uses.retain(|id| *id != chunk_id(1));
        assert!(is_precondition(&s.commit_snapshot(&unused).await));

        let other_group = stored_group(s, "other").await;
        let mut wrong_group = snap.clone();
        wrong_group.group_id = other_group.id;
        assert!(is_not_found(
            s.commit_snapshot(&commit(&wrong_group, pack, 0..2, &[]))
                .await
        ));
        let ghost = replica_set(&g, "ghost");
        assert!(is_not_found(
            s.commit_snapshot(&commit(&snapshot(&ghost), pack, 0..2, &[]))
                .await
        ));

        assert_eq!(s.snapshot_count(c.id).await.unwrap(), 0);
        assert_eq!(s.chunk_ids(c.id).await.unwrap(), vec![]);
        assert_eq!(s.chunk_ids(other.id).await.unwrap(), vec![]);
    }

    pub async fn commit_snapshot_of_many_chunks_crosses_batches(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let pack = ObjectId::new();
        let first = committed(s, &c, pack, 0..2345, &[]).await;
        assert_eq!(packs_of(s, &first).await, vec![pack]);
        let found = located(s, &c, &ids(0..2345)).await;
        let mut expected: Vec<ChunkLocation> =
            (0..2345).map(|n| location(&first, pack, n)).collect();
        expected.sort_by_key(|l| l.chunk_id);
        assert_eq!(found, expected);
        // A conflict in a late batch is named, and nothing of the commit stays.
        let second = snapshot(&c);
        let mut late = commit(&second, ObjectId::new(), 5000..6700, &[]);
        late.new_chunks.push(location(&second, pack, 1700));
        late.uses.push(chunk_id(1700));
        let result = s.commit_snapshot(&late).await;
        assert_eq!(conflict(result), StoreConflict::ChunkStored(chunk_id(1700)));
        // A missing chunk in a late batch of references is named too.
        let third = snapshot(&c);
        let mut missing = commit(&third, ObjectId::new(), 0..0, &[]);
        missing.uses = (0..2345).chain([9999]).map(chunk_id).collect();
        let result = s.commit_snapshot(&missing).await;
        assert!(is_precondition(&result), "{result:?}");
        assert!(message(result).contains(&chunk_id(9999).to_string()));
        assert_eq!(s.snapshot_count(c.id).await.unwrap(), 1);
        assert_eq!(s.chunk_ids(c.id).await.unwrap().len(), 2345);
    }

    pub async fn lists_snapshots_newest_first_in_pages(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_replica_set(s, &g, "rs1").await;
        let base = now();
        let mut snaps = Vec::new();
        // Committed oldest last, so commit order cannot pass for creation order.
        for i in (0..5u32).rev() {
            let mut snap = snapshot(&c);
            snap.created = base + time::Duration::seconds(i64::from(i));
            snap.stored_size_bytes = s
                .commit_snapshot(&commit(&snap, ObjectId::new(), i * 10..i * 10 + 1, &[]))
                .await
                .unwrap();
            snaps.push(snap);
        }
        committed(s, &other, ObjectId::new(), 0..1, &[]).await;
        assert_eq!(
            s.list_snapshots(c.id, page(1, 2)).await.unwrap(),
            (snaps[0..2].to_vec(), 5)
        );
        assert_eq!(
            s.list_snapshots(c.id, page(3, 2)).await.unwrap(),
            (snaps[4..5].to_vec(), 5)
        );
        assert_eq!(s.snapshot_count(other.id).await.unwrap(), 1);
    }

    pub async fn update_snapshot_writes_expiry_and_do_not_delete_only(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let snap = committed(s, &c, ObjectId::new(), 0..1, &[]).await;
        let mut changed = snap.clone();
        changed.expires = None;
        changed.do_not_delete = true;
        changed.data_size_bytes = 1;
        s.update_snapshot(&changed).await.unwrap();
        let read = s.snapshot(c.id, snap.id).await.unwrap().unwrap();
        assert_eq!(read.expires, None);
        assert!(read.do_not_delete);
        assert_eq!(read.data_size_bytes, snap.data_size_bytes);
        assert!(is_not_found(s.update_snapshot(&snapshot(&c)).await));
        let mut elsewhere = changed.clone();
        elsewhere.cluster_id = replica_set(&g, "ghost").id;
        assert!(is_not_found(s.update_snapshot(&elsewhere).await));
    }

    pub async fn hides_snapshot_behind_another_cluster(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_replica_set(s, &g, "rs1").await;
        let snap = committed(s, &c, ObjectId::new(), 0..1, &[]).await;
        assert_eq!(s.snapshot(other.id, snap.id).await.unwrap(), None);
        assert!(is_not_found(s.delete_snapshot(other.id, snap.id).await));
        assert_eq!(s.snapshot(c.id, snap.id).await.unwrap(), Some(snap));
    }

    pub async fn delete_snapshot_keeps_chunks_until_collected(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let (p1, p2) = (ObjectId::new(), ObjectId::new());
        let first = committed(s, &c, p1, 0..3, &[]).await;
        let second = committed(s, &c, p2, 3..4, &[0]).await;
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![]);

        s.delete_snapshot(c.id, first.id).await.unwrap();
        assert!(is_not_found(s.delete_snapshot(c.id, first.id).await));
        assert_eq!(s.snapshot(c.id, first.id).await.unwrap(), None);
        assert_eq!(stored(s, &c).await, ids(0..4));
        // No snapshot uses chunks 1 and 2 now, but p1 holds chunk 0, which the second
        // uses: p1 stays whole, and so do its records.
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![]);
        assert_eq!(stored(s, &c).await, ids(0..4));
        let both = sorted(vec![p1, p2]);
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), both);
        assert_eq!(packs_of(s, &second).await, both);

        s.delete_snapshot(c.id, second.id).await.unwrap();
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), both);
        assert_eq!(s.chunk_ids(c.id).await.unwrap(), vec![]);
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), vec![]);
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![]);
    }

    pub async fn collect_garbage_leaves_other_clusters_alone(s: &dyn MetadataStore) {
        let (g, a) = stored_cluster(s, "g").await;
        let bc = stored_replica_set(s, &g, "rs1").await;
        let (pa, pb) = (ObjectId::new(), ObjectId::new());
        // The same chunk ids in both clusters.
        let sa = committed(s, &a, pa, 0..2, &[]).await;
        let sb = committed(s, &bc, pb, 0..2, &[]).await;
        s.delete_snapshot(a.id, sa.id).await.unwrap();
        assert_eq!(s.collect_garbage(bc.id).await.unwrap(), vec![]);
        assert_eq!(stored(s, &a).await, ids(0..2));
        assert_eq!(s.collect_garbage(a.id).await.unwrap(), vec![pa]);
        assert_eq!(stored(s, &bc).await, ids(0..2));
        assert_eq!(packs_of(s, &sb).await, vec![pb]);
    }

    /// A chunk no snapshot uses stays recorded while its pack is in use, and a later
    /// commit can use it again; the pack goes once no snapshot uses any of its chunks.
    pub async fn collect_garbage_keeps_packs_in_use_whole(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let (p1, p2) = (ObjectId::new(), ObjectId::new());
        let first = committed(s, &c, p1, 0..4, &[]).await;
        let second = committed(s, &c, p2, 10..11, &[3]).await;
        s.delete_snapshot(c.id, first.id).await.unwrap();
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![]);
        // Chunk 1, used by no snapshot, is still there to deduplicate against.
        let third = committed(s, &c, ObjectId::new(), 20..21, &[1]).await;
        assert!(packs_of(s, &third).await.contains(&p1));
        s.delete_snapshot(c.id, second.id).await.unwrap();
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![p2]);
        assert_eq!(stored(s, &c).await, ids([0, 1, 2, 3, 20]));
        s.delete_snapshot(c.id, third.id).await.unwrap();
        assert_eq!(s.collect_garbage(c.id).await.unwrap().len(), 2);
        assert_eq!(stored(s, &c).await, vec![]);
    }

    /// A pack recorded by an upload session whose chunks were all recorded before (so
    /// no chunk record points into it) is garbage at once.
    pub async fn collect_garbage_removes_recorded_packs_left_empty(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let p1 = ObjectId::new();
        let first = committed(s, &c, p1, 0..2, &[]).await;
        let upload = snapshot(&c);
        let again = ObjectId::new();
        s.record_chunks(&[location(&upload, again, 0), location(&upload, again, 1)])
            .await
            .unwrap();
        assert_eq!(located(s, &c, &ids(0..2)).await[0].pack_id, p1);
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), sorted(vec![p1, again]));
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![again]);
        assert_eq!(s.packs_in_use(c.id).await.unwrap(), vec![p1]);
        assert_eq!(packs_of(s, &first).await, vec![p1]);
    }

    pub async fn rejects_commit_using_collected_chunk(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let p1 = ObjectId::new();
        let first = committed(s, &c, p1, 0..2, &[]).await;
        s.delete_snapshot(c.id, first.id).await.unwrap();
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![p1]);
        // A backup that deduplicated against chunk 0 before the collection.
        let second = snapshot(&c);
        let result = s
            .commit_snapshot(&commit(&second, ObjectId::new(), 5..6, &[0]))
            .await;
        assert!(is_precondition(&result), "{result:?}");
        assert!(message(result).contains(&chunk_id(0).to_string()));
        assert_eq!(s.snapshot(c.id, second.id).await.unwrap(), None);
        assert_eq!(s.chunk_ids(c.id).await.unwrap(), vec![]);
    }

    pub async fn concurrent_commits_of_one_new_chunk_let_exactly_one_win(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = stored_cluster(s, "g").await;
        let mut tasks = Vec::new();
        for n in 0..8u32 {
            let store = store.clone();
            let snap = snapshot(&c);
            // Chunk 42 is new to every one of them; chunk 100 + n only to this one.
            let mut ch = commit(&snap, ObjectId::new(), 100 + n..101 + n, &[]);
            ch.new_chunks.push(location(&snap, ObjectId::new(), 42));
            ch.uses.push(chunk_id(42));
            tasks.push(tokio::spawn(async move {
                (n, store.commit_snapshot(&ch).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (n, result) = task.await.unwrap();
            match result {
                Ok(_) => winners.push(n),
                Err(StoreError::Conflict(c)) => {
                    assert_eq!(c, StoreConflict::ChunkStored(chunk_id(42)))
                }
                Err(other) => panic!("{n}: expected success or Conflict, got {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        assert_eq!(s.snapshot_count(c.id).await.unwrap(), 1);
        assert_eq!(stored(s, &c).await, ids([42, 100 + winners[0]]));
    }

    /// Commits that reuse garbage chunks race one collection. Whatever the interleaving,
    /// a commit succeeds exactly when the chunk it reuses is still stored at the end, and
    /// a failed commit leaves nothing.
    pub async fn collection_racing_commits_never_leaves_a_dangling_reference(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = stored_cluster(s, "g").await;
        let p0 = ObjectId::new();
        let old = committed(s, &c, p0, 0..10, &[]).await;
        s.delete_snapshot(c.id, old.id).await.unwrap();

        let mut commits = Vec::new();
        let mut collection = None;
        for n in 0..10u32 {
            let committer = store.clone();
            let snap = snapshot(&c);
            let ch = commit(&snap, ObjectId::new(), 100 + n..101 + n, &[n]);
            commits.push(tokio::spawn(async move {
                let result = committer.commit_snapshot(&ch).await;
                (n, snap, result)
            }));
            if n == 4 {
                let store = store.clone();
                let cluster = c.id;
                collection = Some(tokio::spawn(
                    async move { store.collect_garbage(cluster).await },
                ));
            }
        }
        let emptied = collection.unwrap().await.unwrap().unwrap();
        let left = stored(s, &c).await;
        let mut succeeded = 0u64;
        for task in commits {
            let (n, snap, result) = task.await.unwrap();
            let kept = left.binary_search(&chunk_id(n)).is_ok();
            match result {
                Ok(_) => {
                    succeeded += 1;
                    assert!(kept, "chunk {n} was collected under a committed snapshot");
                    assert_eq!(packs_of(s, &snap).await.len(), 2);
                }
                Err(StoreError::Precondition(_)) => {
                    assert!(!kept, "commit {n} failed although its chunk is stored");
                    assert_eq!(s.snapshot(c.id, snap.id).await.unwrap(), None);
                    assert!(left.binary_search(&chunk_id(100 + n)).is_err());
                }
                Err(other) => panic!("{n}: expected success or Precondition, got {other:?}"),
            }
        }
        // The old pack is reported empty exactly when no commit kept a chunk of it.
        assert_eq!(emptied == vec![p0], succeeded == 0);
        assert_eq!(s.snapshot_count(c.id).await.unwrap(), succeeded);
    }

    pub async fn rejects_delete_cluster_with_snapshots_or_uncollected_chunks(
        s: &dyn MetadataStore,
    ) {
        let g = stored_group(s, "g").await;
        let all = stored_sharded(s, &g, "shop", 1).await;
        let (whole, shard) = (&all[0], &all[1]);
        let pack = ObjectId::new();
        let snap = committed(s, shard, pack, 0..2, &[]).await;
        let job = restore_job(&snap, 1);
        s.insert_restore_job(&job).await.unwrap();

        let result = s.delete_cluster(g.id, whole.id).await;
        assert!(is_precondition(&result), "{result:?}");
        assert!(message(result).contains("snapshots"));
        s.delete_snapshot(shard.id, snap.id).await.unwrap();
        let result = s.delete_cluster(g.id, whole.id).await;
        assert!(is_precondition(&result), "{result:?}");
        assert!(message(result).contains("collect garbage"));
        assert_eq!(
            s.cluster(g.id, shard.id).await.unwrap(),
            Some(shard.clone())
        );

        assert_eq!(s.collect_garbage(shard.id).await.unwrap(), vec![pack]);
        s.delete_cluster(g.id, whole.id).await.unwrap();
        assert_eq!(s.cluster_any_group(shard.id).await.unwrap(), None);
        assert_eq!(s.restore_job(shard.id, job.id).await.unwrap(), None);
    }

    // ----- restore jobs

    pub async fn accepts_restore_job_round_trip(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let snap = committed(s, &c, ObjectId::new(), 0..1, &[]).await;
        let base = now();
        let mut jobs = Vec::new();
        for i in (0..3i64).rev() {
            let mut job = restore_job(&snap, 2);
            job.created = base + time::Duration::seconds(i);
            s.insert_restore_job(&job).await.unwrap();
            jobs.push(job);
        }
        assert_eq!(
            s.restore_job(c.id, jobs[0].id).await.unwrap(),
            Some(jobs[0].clone())
        );
        assert_eq!(
            s.list_restore_jobs(c.id, page(1, 2)).await.unwrap(),
            (jobs[0..2].to_vec(), 3)
        );
        assert!(is_other_conflict(s.insert_restore_job(&jobs[1]).await));
        let other = stored_replica_set(s, &g, "rs1").await;
        assert_eq!(s.restore_job(other.id, jobs[0].id).await.unwrap(), None);
        assert_eq!(
            s.list_restore_jobs(other.id, Page::default())
                .await
                .unwrap(),
            (vec![], 0)
        );
    }

    pub async fn rejects_restore_job_of_missing_snapshot(s: &dyn MetadataStore) {
        let (g, c) = stored_cluster(s, "g").await;
        let other = stored_replica_set(s, &g, "rs1").await;
        let snap = committed(s, &c, ObjectId::new(), 0..1, &[]).await;
        assert!(is_not_found(
            s.insert_restore_job(&restore_job(&snapshot(&c), 1)).await
        ));
        let mut elsewhere = restore_job(&snap, 1);
        elsewhere.cluster_id = other.id;
        assert!(is_not_found(s.insert_restore_job(&elsewhere).await));
        let mut wrong_group = restore_job(&snap, 1);
        wrong_group.group_id = ObjectId::new();
        assert!(is_not_found(s.insert_restore_job(&wrong_group).await));
        assert_eq!(
            s.list_restore_jobs(c.id, Page::default()).await.unwrap().1,
            0
        );
    }

    pub async fn take_restore_download_counts_to_the_limit(s: &dyn MetadataStore) {
        let (_, c) = stored_cluster(s, "g").await;
        let snap = committed(s, &c, ObjectId::new(), 0..1, &[]).await;
        let job = restore_job(&snap, 2);
        s.insert_restore_job(&job).await.unwrap();
        let first = s.take_restore_download(job.id).await.unwrap().unwrap();
        assert_eq!(first.downloads, 1);
        assert_eq!(
            first,
            RestoreJob {
                downloads: 1,
                ..job.clone()
            }
        );
        let second = s.take_restore_download(job.id).await.unwrap().unwrap();
        assert_eq!(second.downloads, 2);
        assert_eq!(s.take_restore_download(job.id).await.unwrap(), None);
        assert_eq!(
            s.restore_job(c.id, job.id)
                .await
                .unwrap()
                .unwrap()
                .downloads,
            2
        );
        assert_eq!(
            s.take_restore_download(ObjectId::new()).await.unwrap(),
            None
        );
        // The record outlives its snapshot.
        s.delete_snapshot(c.id, snap.id).await.unwrap();
        assert_eq!(
            s.restore_job(c.id, job.id).await.unwrap().map(|j| j.id),
            Some(job.id)
        );
    }

    pub async fn concurrent_downloads_never_exceed_the_limit(b: impl Backend) {
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        let (_, c) = stored_cluster(s, "g").await;
        let snap = committed(s, &c, ObjectId::new(), 0..1, &[]).await;
        let job = restore_job(&snap, 3);
        s.insert_restore_job(&job).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            let id = job.id;
            tasks.push(tokio::spawn(async move {
                store.take_restore_download(id).await
            }));
        }
        let mut counts = Vec::new();
        for task in tasks {
            if let Some(taken) = task.await.unwrap().unwrap() {
                counts.push(taken.downloads);
            }
        }
        counts.sort_unstable();
        assert_eq!(counts, vec![1, 2, 3]);
    }

    pub async fn snapshots_survive_reopen<B: Backend>(b: B) {
        let (c, snap, job) = {
            let store = b.store();
            let s: &dyn MetadataStore = &*store;
            let (_, c) = stored_cluster(s, "g").await;
            let snap = committed(s, &c, ObjectId::new(), 0..3, &[]).await;
            let job = restore_job(&snap, 1);
            s.insert_restore_job(&job).await.unwrap();
            (c, snap, job)
        };
        let b = b.reopen().await;
        let store = b.store();
        let s: &dyn MetadataStore = &*store;
        assert_eq!(s.snapshot(c.id, snap.id).await.unwrap(), Some(snap.clone()));
        assert_eq!(packs_of(s, &snap).await.len(), 1);
        assert_eq!(located(s, &c, &ids(0..3)).await.len(), 3);
        assert_eq!(s.restore_job(c.id, job.id).await.unwrap(), Some(job));
        assert_eq!(
            conflict(
                s.commit_snapshot(&commit(&snapshot(&c), ObjectId::new(), 2..3, &[]))
                    .await
            ),
            StoreConflict::ChunkStored(chunk_id(2))
        );
    }

    // ----- several nodes: ping, leases, shared secrets

    pub async fn accepts_ping(b: impl Backend) {
        b.store().ping().await.unwrap();
    }

    const TTL: Duration = Duration::from_secs(30);

    fn after(t: OffsetDateTime, seconds: i64) -> OffsetDateTime {
        t + time::Duration::seconds(seconds)
    }

    /// Eight holders on two stores (two nodes) take one free lease at once.
    pub async fn lease_goes_to_exactly_one_of_racing_holders<B: Backend>(b: B) {
        let stores: [Arc<dyn MetadataStore>; 2] = [b.store(), Arc::new(b.open_again().await)];
        let t = now();
        let mut tasks = Vec::new();
        for n in 0..8 {
            let store = stores[n % 2].clone();
            tasks.push(tokio::spawn(async move {
                let holder = format!("node-{n}");
                let won = store
                    .acquire_lease("job:gc", &holder, t, TTL)
                    .await
                    .unwrap();
                (holder, won)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (holder, won) = task.await.unwrap();
            if won {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let live = stores[1].live_leases("job:", t).await.unwrap();
        assert_eq!(
            live,
            vec![Lease {
                name: "job:gc".into(),
                holder: winners[0].clone(),
                expires: after(t, 30),
            }]
        );
    }

    pub async fn expired_lease_can_be_taken_by_another_holder(s: &dyn MetadataStore) {
        let t = now();
        assert!(s.acquire_lease("intent:1", "a", t, TTL).await.unwrap());
        assert!(
            !s.acquire_lease("intent:1", "b", after(t, 10), TTL)
                .await
                .unwrap()
        );
        // It lapses at t + 30 s exactly (expires <= now).
        assert!(
            s.acquire_lease("intent:1", "b", after(t, 30), TTL)
                .await
                .unwrap()
        );
        assert!(
            !s.acquire_lease("intent:1", "a", after(t, 31), TTL)
                .await
                .unwrap()
        );
        let live = s.live_leases("intent:", after(t, 31)).await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(
            (live[0].holder.as_str(), live[0].expires),
            ("b", after(t, 60))
        );
    }

    pub async fn holder_renews_its_lease(s: &dyn MetadataStore) {
        let t = now();
        assert!(s.acquire_lease("backup:c:s", "a", t, TTL).await.unwrap());
        assert!(
            s.acquire_lease("backup:c:s", "a", after(t, 20), TTL)
                .await
                .unwrap()
        );
        // Without the renewal it would have lapsed at t + 30 s.
        assert!(
            !s.acquire_lease("backup:c:s", "b", after(t, 40), TTL)
                .await
                .unwrap()
        );
        let live = s.live_leases("backup:", after(t, 40)).await.unwrap();
        assert_eq!(live[0].expires, after(t, 50));
        assert_eq!(
            s.live_leases("backup:", after(t, 50)).await.unwrap(),
            vec![]
        );
    }

    pub async fn release_frees_only_the_holders_lease(s: &dyn MetadataStore) {
        let t = now();
        assert!(s.acquire_lease("job:rotate", "a", t, TTL).await.unwrap());
        s.release_lease("job:rotate", "b").await.unwrap();
        assert!(!s.acquire_lease("job:rotate", "b", t, TTL).await.unwrap());
        s.release_lease("job:rotate", "a").await.unwrap();
        assert_eq!(s.live_leases("", t).await.unwrap(), vec![]);
        assert!(s.acquire_lease("job:rotate", "b", t, TTL).await.unwrap());
        s.release_lease("job:never-taken", "a").await.unwrap();
    }

    pub async fn delete_expired_leases_drops_only_expired_ones_of_the_prefix(
        s: &dyn MetadataStore,
    ) {
        let t = now();
        for (name, ttl) in [
            ("digest-nonce:a", Duration::from_secs(1)),
            ("digest-nonce:b", Duration::from_secs(2)),
            ("digest-nonce:c", TTL),
            ("digest-noncX:d", Duration::from_secs(1)),
            ("job:e", Duration::from_secs(1)),
        ] {
            assert!(s.acquire_lease(name, "node", t, ttl).await.unwrap());
        }
        assert_eq!(
            s.delete_expired_leases("digest-nonce:", after(t, 2))
                .await
                .unwrap(),
            2
        );
        // The deleted names are free; the live one and the other prefixes stay.
        assert!(
            s.acquire_lease("digest-nonce:a", "other", after(t, 2), TTL)
                .await
                .unwrap()
        );
        assert!(
            !s.acquire_lease("digest-nonce:c", "other", after(t, 2), TTL)
                .await
                .unwrap()
        );
        let live = s.live_leases("", after(t, 0)).await.unwrap();
        let names: Vec<_> = live.into_iter().map(|l| l.name).collect();
        assert_eq!(
            names,
            [
                "digest-noncX:d",
                "digest-nonce:a",
                "digest-nonce:c",
                "job:e"
            ]
        );
        assert_eq!(
            s.delete_expired_leases("digest-nonce:", after(t, 2))
                .await
                .unwrap(),
            0
        );
    }

    /// The prefix is matched exactly: not as a pattern (`_`, `%`) and with case.
    pub async fn live_leases_lists_unexpired_leases_by_exact_prefix(s: &dyn MetadataStore) {
        let t = now();
        for (name, ttl) in [
            ("backup:c2:s1", TTL),
            ("backup:c1:s2", TTL),
            ("backup:c1:s1", TTL),
            ("backup:c1:old", Duration::from_secs(1)),
            ("Backup:c1:s3", TTL),
            ("backupXc1:s4", TTL),
            ("intent:x", TTL),
            ("50%:a", TTL),
            ("50:b", TTL),
        ] {
            assert!(
                s.acquire_lease(name, "node", t, ttl).await.unwrap(),
                "{name}"
            );
        }
        let names = |leases: Vec<Lease>| leases.into_iter().map(|l| l.name).collect::<Vec<_>>();
        let later = after(t, 5);
        assert_eq!(
            names(s.live_leases("backup:", later).await.unwrap()),
            ["backup:c1:s1", "backup:c1:s2", "backup:c2:s1"]
        );
        assert_eq!(
            names(s.live_leases("backup_", later).await.unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(names(s.live_leases("50%", later).await.unwrap()), ["50%:a"]);
        assert_eq!(
            names(s.live_leases("", later).await.unwrap()),
            [
                "50%:a",
                "50:b",
                "Backup:c1:s3",
                "backup:c1:s1",
                "backup:c1:s2",
                "backup:c2:s1",
                "backupXc1:s4",
                "intent:x"
            ]
        );
        assert_eq!(
            names(s.live_leases("backup:c1:", t).await.unwrap()),
            ["backup:c1:old", "backup:c1:s1", "backup:c1:s2"]
        );
    }

    pub async fn rejects_unbounded_lease_and_secret_input(s: &dyn MetadataStore) {
        let long = "x".repeat(513);
        let t = now();
        for result in [
            s.acquire_lease(&long, "a", t, TTL).await,
            s.acquire_lease("job:x", &long, t, TTL).await,
            s.acquire_lease("", "a", t, TTL).await,
        ] {
            assert!(
                matches!(result, Err(StoreError::Precondition(_))),
                "{result:?}"
            );
        }
        assert!(matches!(
            s.live_leases(&long, t).await,
            Err(StoreError::Precondition(_))
        ));
        assert!(
            s.acquire_lease(&"y".repeat(512), "a", t, TTL)
                .await
                .unwrap()
        );
        assert!(matches!(
            s.shared_secret("empty", &[], now()).await,
            Err(StoreError::Precondition(_))
        ));
        assert!(matches!(
            s.shared_secret("huge", &[1; 4097], now()).await,
            Err(StoreError::Precondition(_))
        ));
    }

    pub async fn shared_secret_returns_the_first_value_to_every_caller<B: Backend>(b: B) {
        let first = {
            let store = b.store();
            let s: &dyn MetadataStore = &*store;
            let first = s.shared_secret("nonce-key", &[1; 32], now()).await.unwrap();
            assert_eq!(first, vec![1; 32]);
            assert_eq!(
                s.shared_secret("nonce-key", &[2; 32], now()).await.unwrap(),
                first
            );
            assert_eq!(
                s.shared_secret("link-key", &[3; 16], now()).await.unwrap(),
                vec![3; 16]
            );
            first
        };
        let b = b.reopen().await;
        assert_eq!(
            b.store()
                .shared_secret("nonce-key", &[4; 32], now())
                .await
                .unwrap(),
            first
        );
    }

    /// Twenty callers on two stores (two nodes), each with its own candidate.
    pub async fn shared_secret_agrees_among_concurrent_callers<B: Backend>(b: B) {
        let stores: [Arc<dyn MetadataStore>; 2] = [b.store(), Arc::new(b.open_again().await)];
        let mut tasks = Vec::new();
        for n in 0..20u8 {
            let store = stores[usize::from(n % 2)].clone();
            tasks.push(tokio::spawn(async move {
                store
                    .shared_secret("shared", &[n; 32], now())
                    .await
                    .unwrap()
            }));
        }
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.unwrap());
        }
        seen.dedup();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].len() == 32 && seen[0].iter().all(|&x| x == seen[0][0] && x < 20));
    }
}
