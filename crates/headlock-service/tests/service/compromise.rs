//! Compromise recovery through the service: the key is declared compromised, the
//! re-encryption job runs to its end, and every snapshot still restores; also when the
//! node stops between the rotation's commit and recording the job.

use std::collections::HashSet;
use std::time::Duration;

use headlock_core::ObjectId;
use headlock_core::keys::KeyState;
use headlock_core::model::{IntentPhase, Page, ReencryptionJob, ReencryptionStatus, RotationType};
use headlock_service::Service;

use crate::harness::{
    Encrypted, World, admin, assert_settled, backup, current_key, encrypted_cluster, random_bytes,
    restore,
};

/// Waits (up to 30 s) until a re-encryption job is no longer running.
pub async fn wait_for_job(node: &Service, c: &Encrypted, job: ObjectId) -> ReencryptionJob {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let j = node
            .reencryption_job(&admin(), &c.group, &c.id(), &job.to_string())
            .await
            .unwrap();
        if j.status != ReencryptionStatus::Running {
            return j;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "re-encryption job {job} still running: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compromise_rewrites_every_snapshot_under_a_new_data_key_and_each_still_restores() {
    let world = World::start().await;
    let node = world.node().await;
    let c = encrypted_cluster(&node).await;
    let old_key = current_key(&node, c.cluster.id).await;
    let (first, second) = (random_bytes(400 * 1024), random_bytes(200 * 1024));
    let snapshots = [
        (backup(&node, &c, &first).await, first),
        (backup(&node, &c, &second).await, second),
    ];
    let old_data_key = node.store().data_keys(c.cluster.id).await.unwrap()[0].id;
    let packs_before: HashSet<String> = world.packs(c.cluster.id).into_iter().collect();
    assert!(!packs_before.is_empty());

    let jobs = node
        .report_compromise(&admin(), &c.group, &c.id())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let job = wait_for_job(&node, &c, jobs[0].id).await;
    assert_eq!(job.status, ReencryptionStatus::Finished);
    assert_eq!((job.snapshots_done, job.error.as_deref()), (2, None));

    let current = assert_settled(&world, &node, &c.cluster, KeyState::Compromised).await;
    assert_ne!(current, old_key);
    assert_eq!(world.state(&old_key).await, KeyState::Compromised);
    let data_keys = node.store().data_keys(c.cluster.id).await.unwrap();
    assert_eq!(data_keys.len(), 1, "only the new data key is left");
    assert_eq!(data_keys[0].id, job.new_data_key_id);
    assert_ne!(data_keys[0].id, old_data_key);
    for (id, data) in &snapshots {
        let record = node
            .store()
            .snapshot(c.cluster.id, *id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.data_key_id, job.new_data_key_id);
        assert_eq!(&restore(&node, &c, *id).await, data);
    }

    // The packs sealed under the old data key are garbage now.
    node.collect_garbage(c.cluster.id).await.unwrap();
    let packs_after: HashSet<String> = world.packs(c.cluster.id).into_iter().collect();
    assert!(!packs_after.is_empty());
    assert!(
        packs_after.is_disjoint(&packs_before),
        "old packs left: {:?}",
        packs_after.intersection(&packs_before).collect::<Vec<_>>()
    );
    for (id, data) in &snapshots {
        assert_eq!(&restore(&node, &c, *id).await, data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_after_a_compromise_use_the_new_data_key() {
    let world = World::start().await;
    let node = world.node().await;
    let c = encrypted_cluster(&node).await;
    let jobs = node
        .report_compromise(&admin(), &c.group, &c.id())
        .await
        .unwrap();
    let job = wait_for_job(&node, &c, jobs[0].id).await;
    assert_eq!(
        (job.status, job.snapshots_done),
        (ReencryptionStatus::Finished, 0)
    );

    let data = random_bytes(100 * 1024);
    let snapshot = backup(&node, &c, &data).await;
    let record = node
        .store()
        .snapshot(c.cluster.id, snapshot)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.data_key_id, job.new_data_key_id);
    assert_eq!(restore(&node, &c, snapshot).await, data);
    assert_settled(&world, &node, &c.cluster, KeyState::Compromised).await;
}

/// Makes the database refuse every new re-encryption job: a compromise rotation then
/// commits and stops right there, leaving what a crash between its commit and the job's
/// record leaves (the rotation's key-manager calls are all before the commit or after
/// the job, so a key manager that stops cannot reach this point).
const REFUSE_JOBS: &str = "CREATE TRIGGER refuse_jobs BEFORE INSERT ON reencryption_jobs \
     BEGIN SELECT RAISE(ABORT, 'test: the node stops before recording the job'); END";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_after_compromise_crash_between_commit_and_recording_the_job_records_and_finishes_it()
 {
    let world = World::start().await;
    let node = world.node().await;
    let c = encrypted_cluster(&node).await;
    let old_key = current_key(&node, c.cluster.id).await;
    let (first, second) = (random_bytes(300 * 1024), random_bytes(100 * 1024));
    let snapshots = [
        (backup(&node, &c, &first).await, first),
        (backup(&node, &c, &second).await, second),
    ];

    world.sql(REFUSE_JOBS).await;
    let stopped = node.report_compromise(&admin(), &c.group, &c.id()).await;
    assert!(stopped.is_err(), "{stopped:?}");
    drop(node);
    // Committed, and nothing after: the intent is left, no job, the old key still Active.
    let store = world.node().await.store().clone();
    let intents = store.intents().await.unwrap();
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(
        (intents[0].phase, intents[0].rotation_type),
        (IntentPhase::Committed, RotationType::Compromise)
    );
    assert_eq!(store.running_reencryption_jobs().await.unwrap(), vec![]);
    assert_eq!(world.state(&old_key).await, KeyState::Active);
    assert_eq!(store.data_keys(c.cluster.id).await.unwrap().len(), 2);
    world.sql("DROP TRIGGER refuse_jobs").await;

    // A restarted node reconciles: the job is recorded, the old key revoked.
    let node = world.node().await;
    let report = node.reconcile().await.unwrap();
    assert_eq!((report.resolved, report.deferred), (1, 0), "{report:?}");
    assert_eq!(report.superseded_revoked, vec![old_key.clone()]);
    let (jobs, total) = node
        .list_reencryption_jobs(&admin(), &c.group, &c.id(), Page { num: 1, size: 10 })
        .await
        .unwrap();
    assert_eq!(total, 1, "{jobs:?}");
    assert_eq!(jobs[0].snapshots_total, 2);

    node.resume_reencryption_jobs().await.unwrap();
    let job = wait_for_job(&node, &c, jobs[0].id).await;
    assert_eq!(job.status, ReencryptionStatus::Finished);
    assert_eq!((job.snapshots_done, job.error.as_deref()), (2, None));

    let current = assert_settled(&world, &node, &c.cluster, KeyState::Compromised).await;
    assert_ne!(current, old_key);
    assert_eq!(world.state(&old_key).await, KeyState::Compromised);
    let data_keys = node.store().data_keys(c.cluster.id).await.unwrap();
    assert_eq!(data_keys.len(), 1, "only the new data key is left");
    assert_eq!(data_keys[0].id, job.new_data_key_id);
    for (id, data) in &snapshots {
        let record = node
            .store()
            .snapshot(c.cluster.id, *id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.data_key_id, job.new_data_key_id);
        assert_eq!(&restore(&node, &c, *id).await, data);
    }
}
