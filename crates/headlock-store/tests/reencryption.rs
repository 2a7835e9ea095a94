//! Conformance of the re-encryption job methods of [`MetadataStore`] (compromise
//! recovery), on SQLite and on PostgreSQL: job records, one running job per cluster, the
//! per-snapshot switch to a new data key and the end of a job. Beside `conformance.rs`
//! (same harness, `common/mod.rs`) so that the two suites can grow independently.

use std::sync::Arc;

use headlock_core::model::{
    AuditEvent, AuthMechanism, BackupConfig, BackupStatus, ChunkId, ChunkLocation, Cluster,
    ClusterType, DataKeyRecord, Group, IntentPhase, KeyIntent, MasterKeyRecord, Page,
    ReencryptionJob, ReencryptionStatus, RotationType, SnapshotKind, SnapshotRecord,
};
use headlock_core::store::{KeyChange, ReencryptCommit, ReencryptFinish, SnapshotCommit};
use headlock_core::{MetadataStore, ObjectId, StoreConflict, StoreError};
use headlock_store::truncate_to_micros;
use time::OffsetDateTime;

#[macro_use]
mod common;
use common::{Backend, PgBackend, SqliteBackend};

macro_rules! reencryption_suite {
    ($backend:ident: $harness:ty) => {
        stamp!($backend: $harness, [
            accepts_job_round_trip_and_one_running_job_per_cluster,
            switch_moves_a_snapshot_to_the_new_key_and_counts_progress,
            rejects_switch_of_a_snapshot_not_under_the_expected_key,
            rejects_switch_reusing_a_missing_chunk_and_changes_nothing,
            finish_deletes_other_data_keys_only_when_every_snapshot_is_switched,
            failed_job_keeps_every_data_key,
            a_key_change_does_not_bring_back_a_data_key_deleted_since_it_read_them,
        ]);
    };
}

reencryption_suite!(sqlite: SqliteBackend);
reencryption_suite!(postgres: PgBackend);

mod suite {
    use super::*;

    fn now() -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }

    fn event(cluster: &Cluster, kind: &str) -> AuditEvent {
        AuditEvent {
            id: ObjectId::new(),
            created: now(),
            event_type: kind.into(),
            group_id: Some(cluster.group_id),
            cluster_id: Some(cluster.id),
            username: Some("alice".into()),
            remote_address: None,
            outcome: "SUCCESS".into(),
            old_key_uid: None,
            new_key_uid: None,
            detail: Some("test".into()),
        }
    }

    fn data_key(cluster: &Cluster, fill: u8) -> DataKeyRecord {
        DataKeyRecord {
            id: ObjectId::new(),
            cluster_id: cluster.id,
            wrapped: vec![fill; 61],
            master_key_uid: "mk-2".into(),
            created: now(),
        }
    }

    /// A change of the cluster's master key `from` -> `to` (its intent stored), writing
    /// `data_keys`, having read `read`.
    async fn key_change(
        s: &dyn MetadataStore,
        c: &Cluster,
        (from, to): (Option<&str>, &str),
        data_keys: Vec<DataKeyRecord>,
        read: Option<Vec<ObjectId>>,
    ) -> (KeyIntent, KeyChange) {
        let intent = KeyIntent {
            id: ObjectId::new(),
            cluster_id: c.id,
            key_name: format!("headlock-{}", ObjectId::new()),
            previous_uid: from.map(Into::into),
            new_uid: None,
            phase: IntentPhase::Pending,
            rotation_type: RotationType::Compromise,
            requested_by: "alice".into(),
            created: now(),
        };
        s.insert_intent(&intent).await.unwrap();
        let change = KeyChange {
            intent_id: intent.id,
            cluster_id: c.id,
            expected_current: from.map(Into::into),
            new_key: MasterKeyRecord {
                cluster_id: c.id,
                kmip_uid: to.into(),
                kmip_server: "127.0.0.1:5696".into(),
                kmip_name: intent.key_name.clone(),
                created: now(),
                retired: None,
                rotation_type: RotationType::Compromise,
                requested_by: "alice".into(),
            },
            retired_at: now(),
            data_keys,
            data_keys_read: read,
            configs: vec![],
            audit: event(c, "RS_ROTATE_MASTER_KEY_AUDIT"),
            lease: None,
        };
        (intent, change)
    }

    /// A cluster whose master key `mk-2` wraps two data keys: (old, new).
    async fn cluster_with_two_data_keys(
        s: &dyn MetadataStore,
    ) -> (Cluster, DataKeyRecord, DataKeyRecord) {
        let g = Group {
            id: ObjectId::new(),
            name: format!("g-{}", ObjectId::new()),
            org_id: ObjectId::new(),
            created: now(),
        };
        s.insert_group(&g).await.unwrap();
        let c = Cluster {
            id: ObjectId::new(),
            group_id: g.id,
            cluster_name: "rs0".into(),
            type_name: ClusterType::ReplicaSet,
            replica_set_name: Some("rs0".into()),
            shard_name: None,
            parent_cluster_id: None,
            created: now(),
        };
        let config = BackupConfig {
            status: BackupStatus::Started,
            encryption_enabled: true,
            auth_mechanism: AuthMechanism::None,
            ..BackupConfig::new_inactive(g.id, c.id)
        };
        s.insert_clusters(std::slice::from_ref(&c), std::slice::from_ref(&config))
            .await
            .unwrap();
        let (old, new) = (data_key(&c, 1), data_key(&c, 2));
        let (intent, mut change) =
            key_change(s, &c, (None, "mk-2"), vec![old.clone(), new.clone()], None).await;
        change.configs = vec![config];
        s.commit_key_change(&change).await.unwrap();
        s.delete_intent(intent.id).await.unwrap();
        (c, old, new)
    }

    fn chunk_id(n: u32) -> ChunkId {
        let mut b = [0x5au8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        ChunkId(b)
    }

    fn location(cluster: &Cluster, snapshot: ObjectId, pack: ObjectId, n: u32) -> ChunkLocation {
        ChunkLocation {
            cluster_id: cluster.id,
            chunk_id: chunk_id(n),
            pack_id: pack,
            offset: 8 + u64::from(n) * 1000,
            length: 900,
            plaintext_length: 1000,
            stored_by: snapshot,
        }
    }

    /// A snapshot under `key` storing chunks `chunks` in a pack of its own.
    async fn snapshot_under(
        s: &dyn MetadataStore,
        cluster: &Cluster,
        key: ObjectId,
        chunks: std::ops::Range<u32>,
    ) -> (SnapshotRecord, ObjectId) {
        let snap = SnapshotRecord {
            id: ObjectId::new(),
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            created: now(),
            kind: SnapshotKind::Stream,
            data_size_bytes: 3000,
            stored_size_bytes: 2700,
            file_size_bytes: 3000,
            expires: None,
            do_not_delete: false,
            data_key_id: key,
        };
        let pack = ObjectId::new();
        s.commit_snapshot(&SnapshotCommit {
            snapshot: snap.clone(),
            new_chunks: chunks
                .clone()
                .map(|n| location(cluster, snap.id, pack, n))
                .collect(),
            uses: chunks.map(chunk_id).collect(),
            lengths: Vec::new(),
        })
        .await
        .unwrap();
        (snap, pack)
    }

    fn job(cluster: &Cluster, new: &DataKeyRecord, total: u64) -> ReencryptionJob {
        ReencryptionJob {
            id: ObjectId::new(),
            group_id: cluster.group_id,
            cluster_id: cluster.id,
            new_data_key_id: new.id,
            status: ReencryptionStatus::Running,
            created: now(),
            finished: None,
            snapshots_total: total,
            snapshots_done: 0,
            bytes_total: total * 3000,
            bytes_done: 0,
            requested_by: "alice".into(),
            error: None,
        }
    }

    /// The switch of `snap` to `new`, storing chunks `chunks` in `pack`.
    fn switch(
        job: &ReencryptionJob,
        snap: &SnapshotRecord,
        from: ObjectId,
        pack: ObjectId,
        chunks: std::ops::Range<u32>,
        cluster: &Cluster,
    ) -> ReencryptCommit {
        ReencryptCommit {
            job_id: job.id,
            cluster_id: cluster.id,
            snapshot_id: snap.id,
            from_data_key_id: from,
            to_data_key_id: job.new_data_key_id,
            new_chunks: chunks
                .clone()
                .map(|n| location(cluster, snap.id, pack, n))
                .collect(),
            uses: chunks.map(chunk_id).collect(),
            bytes: snap.data_size_bytes,
        }
    }

    fn finish(job: &ReencryptionJob, keep: Option<ObjectId>, cluster: &Cluster) -> ReencryptFinish {
        ReencryptFinish {
            job_id: job.id,
            cluster_id: cluster.id,
            status: if keep.is_some() {
                ReencryptionStatus::Finished
            } else {
                ReencryptionStatus::Failed
            },
            finished: now(),
            keep_data_key_id: keep,
            error: keep.is_none().then(|| "snapshot X is damaged".to_string()),
            audit: vec![
                event(cluster, "DATA_KEY_DESTROYED"),
                event(cluster, "REENCRYPTION_FINISHED"),
            ],
        }
    }

    async fn audit_count(s: &dyn MetadataStore) -> u64 {
        s.list_audit(None, Page::default()).await.unwrap().1
    }

    pub async fn accepts_job_round_trip_and_one_running_job_per_cluster(b: impl Backend) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, _, new) = cluster_with_two_data_keys(s).await;
        let before = audit_count(s).await;
        let j = job(&c, &new, 2);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        assert_eq!(audit_count(s).await, before + 1);
        assert_eq!(
            s.reencryption_job(c.id, j.id).await.unwrap(),
            Some(j.clone())
        );
        assert_eq!(
            s.reencryption_job(ObjectId::new(), j.id).await.unwrap(),
            None
        );
        assert_eq!(
            s.list_reencryption_jobs(c.id, Page::default())
                .await
                .unwrap(),
            (vec![j.clone()], 1)
        );
        assert_eq!(
            s.running_reencryption_jobs().await.unwrap(),
            vec![j.clone()]
        );
        // A second running job of the cluster is refused, and its audit event with it.
        let second = job(&c, &new, 0);
        let r = s
            .insert_reencryption_job(&second, &event(&c, "REENCRYPTION_STARTED"))
            .await;
        assert!(
            matches!(
                r,
                Err(StoreError::Conflict(StoreConflict::ReencryptionJobRunning))
            ),
            "{r:?}"
        );
        assert_eq!(audit_count(s).await, before + 1);
        // Once the first ended, another may run.
        s.finish_reencryption_job(&finish(&j, None, &c))
            .await
            .unwrap();
        s.insert_reencryption_job(&second, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        let (listed, total) = s
            .list_reencryption_jobs(c.id, Page::default())
            .await
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(listed[0].id, second.id, "newest first");
        assert_eq!(listed[1].status, ReencryptionStatus::Failed);
    }

    pub async fn switch_moves_a_snapshot_to_the_new_key_and_counts_progress(b: impl Backend) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, old, new) = cluster_with_two_data_keys(s).await;
        let (snap, old_pack) = snapshot_under(s, &c, old.id, 0..3).await;
        let (other, _) = snapshot_under(s, &c, old.id, 20..22).await;
        let j = job(&c, &new, 2);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        let new_pack = ObjectId::new();
        let commit = switch(&j, &snap, old.id, new_pack, 10..13, &c);
        s.commit_reencrypted_snapshot(&commit).await.unwrap();

        let switched = s.snapshot(c.id, snap.id).await.unwrap().unwrap();
        assert_eq!(switched.data_key_id, new.id);
        assert_eq!(
            SnapshotRecord {
                data_key_id: old.id,
                ..switched
            },
            snap,
            "nothing else changes"
        );
        assert_eq!(s.snapshot_packs(snap.id).await.unwrap(), vec![new_pack]);
        let mut found = s.chunk_locations(c.id, &commit.uses).await.unwrap();
        found.sort_by_key(|l| l.chunk_id);
        assert_eq!(found, commit.new_chunks);
        let other_now = s.snapshot(c.id, other.id).await.unwrap().unwrap();
        assert_eq!(other_now.data_key_id, old.id, "other snapshots stay");
        let progress = s.reencryption_job(c.id, j.id).await.unwrap().unwrap();
        assert_eq!((progress.snapshots_done, progress.bytes_done), (1, 3000));
        assert_eq!(progress.status, ReencryptionStatus::Running);
        // The old chunks are garbage now: their pack empties.
        assert_eq!(s.collect_garbage(c.id).await.unwrap(), vec![old_pack]);
        assert!(s.packs_in_use(c.id).await.unwrap().contains(&new_pack));
    }

    pub async fn rejects_switch_of_a_snapshot_not_under_the_expected_key(b: impl Backend) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, old, new) = cluster_with_two_data_keys(s).await;
        let (snap, _) = snapshot_under(s, &c, old.id, 0..3).await;
        let j = job(&c, &new, 1);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        s.commit_reencrypted_snapshot(&switch(&j, &snap, old.id, ObjectId::new(), 10..13, &c))
            .await
            .unwrap();
        // Again (a second worker, or a retry after a lost answer): refused, nothing counted.
        let again = switch(&j, &snap, old.id, ObjectId::new(), 30..33, &c);
        let r = s.commit_reencrypted_snapshot(&again).await;
        assert!(matches!(r, Err(StoreError::Precondition(_))), "{r:?}");
        let progress = s.reencryption_job(c.id, j.id).await.unwrap().unwrap();
        assert_eq!(progress.snapshots_done, 1);
        let stored = s.chunk_ids(c.id).await.unwrap();
        assert!(!stored.contains(&chunk_id(30)), "rolled back");
        // A deleted snapshot: refused too.
        let r = s
            .commit_reencrypted_snapshot(&ReencryptCommit {
                snapshot_id: ObjectId::new(),
                ..switch(&j, &snap, old.id, ObjectId::new(), 40..41, &c)
            })
            .await;
        assert!(matches!(r, Err(StoreError::Precondition(_))), "{r:?}");
    }

    pub async fn rejects_switch_reusing_a_missing_chunk_and_changes_nothing(b: impl Backend) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, old, new) = cluster_with_two_data_keys(s).await;
        let (snap, old_pack) = snapshot_under(s, &c, old.id, 0..3).await;
        let j = job(&c, &new, 1);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        let mut commit = switch(&j, &snap, old.id, ObjectId::new(), 10..12, &c);
        commit.uses.push(chunk_id(99)); // "reused", but never stored
        let r = s.commit_reencrypted_snapshot(&commit).await;
        match r {
            Err(StoreError::Precondition(why)) => {
                assert!(why.contains(&chunk_id(99).to_string()), "{why}")
            }
            other => panic!("expected a precondition failure, got {other:?}"),
        }
        let now = s.snapshot(c.id, snap.id).await.unwrap().unwrap();
        assert_eq!(now.data_key_id, old.id);
        assert_eq!(s.snapshot_packs(snap.id).await.unwrap(), vec![old_pack]);
        let progress = s.reencryption_job(c.id, j.id).await.unwrap().unwrap();
        assert_eq!(progress.snapshots_done, 0);
    }

    pub async fn finish_deletes_other_data_keys_only_when_every_snapshot_is_switched(
        b: impl Backend,
    ) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, old, new) = cluster_with_two_data_keys(s).await;
        let (snap, _) = snapshot_under(s, &c, old.id, 0..3).await;
        let j = job(&c, &new, 1);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        let before = audit_count(s).await;
        // A snapshot is still under the old key: refused, nothing changes.
        let r = s
            .finish_reencryption_job(&finish(&j, Some(new.id), &c))
            .await;
        assert!(matches!(r, Err(StoreError::Precondition(_))), "{r:?}");
        assert_eq!(s.data_keys(c.id).await.unwrap().len(), 2);
        assert_eq!(audit_count(s).await, before);
        // Keeping a key the cluster does not have: refused.
        let r = s
            .finish_reencryption_job(&finish(&j, Some(ObjectId::new()), &c))
            .await;
        assert!(matches!(r, Err(StoreError::Precondition(_))), "{r:?}");

        s.commit_reencrypted_snapshot(&switch(&j, &snap, old.id, ObjectId::new(), 10..13, &c))
            .await
            .unwrap();
        s.finish_reencryption_job(&finish(&j, Some(new.id), &c))
            .await
            .unwrap();
        let keys = s.data_keys(c.id).await.unwrap();
        assert_eq!(keys, vec![new.clone()]);
        let done = s.reencryption_job(c.id, j.id).await.unwrap().unwrap();
        assert_eq!(done.status, ReencryptionStatus::Finished);
        assert!(done.finished.is_some());
        assert_eq!((done.snapshots_total, done.bytes_total), (1, 3000));
        assert_eq!(audit_count(s).await, before + 2);
        assert!(s.running_reencryption_jobs().await.unwrap().is_empty());
        // Ended once only.
        let r = s
            .finish_reencryption_job(&finish(&j, Some(new.id), &c))
            .await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        s.verify_audit_chain().await.unwrap();
    }

    /// A rotation reads the data keys, re-wraps them (KMIP round trips), then commits; a
    /// compromise's re-encryption job may end in between and delete the old data key.
    /// The commit must not write it back, and must refuse to drop a key it never read.
    pub async fn a_key_change_does_not_bring_back_a_data_key_deleted_since_it_read_them(
        b: impl Backend,
    ) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, old, new) = cluster_with_two_data_keys(s).await;
        // The rotation reads both keys and re-wraps them under mk-3 ...
        let rewrapped = |dk: &DataKeyRecord, uid: &str| DataKeyRecord {
            wrapped: vec![dk.wrapped[0] + 10; 61],
            master_key_uid: uid.into(),
            ..dk.clone()
        };
        let (intent, change) = key_change(
            s,
            &c,
            (Some("mk-2"), "mk-3"),
            vec![rewrapped(&old, "mk-3"), rewrapped(&new, "mk-3")],
            Some(vec![old.id, new.id]),
        )
        .await;
        // ... while the job ends, deleting the old key (no snapshot is under it).
        let j = job(&c, &new, 0);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        s.finish_reencryption_job(&finish(&j, Some(new.id), &c))
            .await
            .unwrap();
        s.commit_key_change(&change).await.unwrap();
        s.delete_intent(intent.id).await.unwrap();
        assert_eq!(
            s.data_keys(c.id).await.unwrap(),
            vec![rewrapped(&new, "mk-3")],
            "the deleted key stays deleted; the other is re-wrapped"
        );

        // A change that did not read a stored key is refused: committing it would drop
        // that key. Nothing moves.
        let (_, blind) = key_change(s, &c, (Some("mk-3"), "mk-4"), vec![], Some(vec![])).await;
        let r = s.commit_key_change(&blind).await;
        assert!(matches!(r, Err(StoreError::Precondition(_))), "{r:?}");
        assert_eq!(
            s.data_keys(c.id).await.unwrap(),
            vec![rewrapped(&new, "mk-3")]
        );
        assert_eq!(
            s.current_master_key(c.id)
                .await
                .unwrap()
                .map(|k| k.kmip_uid),
            Some("mk-3".into())
        );
        s.verify_audit_chain().await.unwrap();
    }

    pub async fn failed_job_keeps_every_data_key(b: impl Backend) {
        let store: Arc<dyn MetadataStore> = b.store();
        let s = &*store;
        let (c, old, new) = cluster_with_two_data_keys(s).await;
        snapshot_under(s, &c, old.id, 0..3).await;
        let j = job(&c, &new, 1);
        s.insert_reencryption_job(&j, &event(&c, "REENCRYPTION_STARTED"))
            .await
            .unwrap();
        s.finish_reencryption_job(&finish(&j, None, &c))
            .await
            .unwrap();
        assert_eq!(s.data_keys(c.id).await.unwrap().len(), 2);
        let failed = s.reencryption_job(c.id, j.id).await.unwrap().unwrap();
        assert_eq!(failed.status, ReencryptionStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("snapshot X is damaged"));
        assert_eq!(failed.snapshots_total, 1, "a failed job keeps its totals");
    }
}
