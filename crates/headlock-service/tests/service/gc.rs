//! Garbage collection through the service: deleting a snapshot removes the packs only it
//! used, and keeps every chunk another snapshot shares.

use headlock_core::keys::KeyState;

use crate::harness::{
    World, admin, assert_settled, backup, encrypted_cluster, random_bytes, restore,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_snapshot_removes_its_own_packs_and_keeps_the_chunks_another_shares() {
    let world = World::start().await;
    let node = world.node().await;
    let c = encrypted_cluster(&node).await;
    // Several chunks (512 KiB on average, at least 128 KiB), so that all but the last of
    // `shared` are cut the same way when more data follows it.
    let shared = random_bytes(3 * 1024 * 1024);
    let kept = backup(&node, &c, &shared).await;
    let packs_of_kept = world.packs(c.cluster.id);
    assert_eq!(packs_of_kept.len(), 1);

    let mut longer = shared.clone();
    longer.extend(random_bytes(2 * 1024 * 1024));
    let deleted = backup(&node, &c, &longer).await;
    let packs = world.packs(c.cluster.id);
    assert_eq!(
        packs.len(),
        2,
        "the second snapshot's new chunks are in a pack of their own"
    );
    let kept_packs = node.store().snapshot_packs(kept).await.unwrap();
    assert_eq!(kept_packs.len(), 1);
    let deleted_packs = node.store().snapshot_packs(deleted).await.unwrap();
    assert_eq!(deleted_packs.len(), 2);
    assert!(
        deleted_packs.contains(&kept_packs[0]),
        "the snapshots share chunks: the second uses the first one's pack"
    );
    let kept_chunks = node.store().chunk_ids(c.cluster.id).await.unwrap().len();

    let report = node
        .delete_snapshot(&admin(), &c.group, &c.id(), &deleted.to_string())
        .await
        .unwrap();
    assert_eq!(report.packs_deleted, 1);
    assert_eq!(world.packs(c.cluster.id), packs_of_kept);
    assert_eq!(restore(&node, &c, kept).await, shared);
    assert_eq!(node.store().snapshot_packs(kept).await.unwrap(), kept_packs);
    assert!(
        node.store().chunk_ids(c.cluster.id).await.unwrap().len() < kept_chunks,
        "the deleted snapshot's own chunks are gone"
    );
    assert_settled(&world, &node, &c.cluster, KeyState::Deactivated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_only_snapshot_of_data_removes_every_pack_of_it() {
    let world = World::start().await;
    let node = world.node().await;
    let c = encrypted_cluster(&node).await;
    let data = random_bytes(200 * 1024);
    let snapshot = backup(&node, &c, &data).await;
    assert_eq!(world.packs(c.cluster.id).len(), 1);

    let report = node
        .delete_snapshot(&admin(), &c.group, &c.id(), &snapshot.to_string())
        .await
        .unwrap();
    assert_eq!(report.packs_deleted, 1);
    assert_eq!(world.packs(c.cluster.id), Vec::<String>::new());
    assert_eq!(
        node.store().chunk_ids(c.cluster.id).await.unwrap(),
        Vec::new()
    );
}
