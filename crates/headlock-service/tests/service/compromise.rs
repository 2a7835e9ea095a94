//! Compromise recovery through the service: the key is declared compromised, the
//! re-encryption job runs to its end, and every snapshot still restores.

use std::collections::HashSet;
use std::time::Duration;

use headlock_core::ObjectId;
use headlock_core::keys::KeyState;
use headlock_core::model::{ReencryptionJob, ReencryptionStatus};
use headlock_service::Service;

use crate::harness::{
    Encrypted, World, admin, assert_settled, backup, encrypted_cluster, random_bytes, restore,
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
    let old_key = node
        .store()
        .current_master_key(c.cluster.id)
        .await
        .unwrap()
        .unwrap()
        .kmip_uid;
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
