//! Prints how long the store takes for the metadata half of a backup of CHUNKS chunks
//! (about CHUNKS / 2 MiB of data at FastCDC's 512 KiB average): the commit of a first backup
//! (every chunk new), of a second backup of the same data (every chunk reused), reading
//! the locations of a snapshot's chunks and the cluster's chunk ids, and a garbage
//! collection, on a real file with `synchronous=FULL`; then the database's size.
//!
//! ```text
//! cargo run --release -p headlock-store --example snapshot_commit -- [DIR] [CHUNKS] [ROUNDS]
//! ```
//!
//! DIR defaults to a fresh temporary directory (mind that /tmp may be tmpfs, where fsync
//! is free); CHUNKS defaults to 10,000 and ROUNDS (first backups of fresh data) to 5.

use std::time::{Duration, Instant};

use headlock_core::ObjectId;
use headlock_core::model::{
    BackupConfig, ChunkId, ChunkLocation, Cluster, ClusterType, Group, SnapshotKind, SnapshotRecord,
};
use headlock_core::store::{GroupStore, SnapshotCommit, SnapshotStore};
use headlock_store::SqlStore;
use time::OffsetDateTime;

fn chunk_id(round: u32, n: u32) -> ChunkId {
    // Spread like real keyed hashes: no shared prefix between neighbours.
    let mut b = [0u8; 32];
    let mut x = (u64::from(round) << 32 | u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for chunk in b.chunks_mut(8) {
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    ChunkId(b)
}

fn snapshot(cluster: &Cluster, chunks: u32) -> SnapshotRecord {
    SnapshotRecord {
        id: ObjectId::new(),
        group_id: cluster.group_id,
        cluster_id: cluster.id,
        created: OffsetDateTime::now_utc(),
        kind: SnapshotKind::Stream,
        data_size_bytes: u64::from(chunks) << 20,
        stored_size_bytes: u64::from(chunks) << 20,
        file_size_bytes: u64::from(chunks) << 20,
        expires: None,
        do_not_delete: false,
        data_key_id: ObjectId::new(),
    }
}

/// A backup of `chunks` chunks of `round`'s data, in packs of 32 chunks.
fn first_backup(cluster: &Cluster, round: u32, chunks: u32) -> SnapshotCommit {
    let snap = snapshot(cluster, chunks);
    let mut pack = ObjectId::new();
    let new_chunks: Vec<ChunkLocation> = (0..chunks)
        .map(|n| {
            if n % 32 == 0 {
                pack = ObjectId::new();
            }
            ChunkLocation {
                cluster_id: cluster.id,
                chunk_id: chunk_id(round, n),
                pack_id: pack,
                offset: 8 + u64::from(n % 32) * (1 << 20),
                length: 1 << 20,
                plaintext_length: 1 << 20,
                stored_by: snap.id,
            }
        })
        .collect();
    SnapshotCommit {
        uses: new_chunks.iter().map(|c| c.chunk_id).collect(),
        lengths: Vec::new(),
        new_chunks,
        snapshot: snap,
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let chunks: u32 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let rounds: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5);
    let path = dir.join(format!("bench-{}.db", ObjectId::new()));
    let store = SqlStore::open_sqlite(&path).await?;

    let group = Group {
        id: ObjectId::new(),
        name: "bench".into(),
        org_id: ObjectId::new(),
        created: OffsetDateTime::now_utc(),
    };
    store.insert_group(&group).await?;
    let cluster = Cluster {
        id: ObjectId::new(),
        group_id: group.id,
        cluster_name: "rs0".into(),
        type_name: ClusterType::ReplicaSet,
        replica_set_name: Some("rs0".into()),
        shard_name: None,
        parent_cluster_id: None,
        created: OffsetDateTime::now_utc(),
    };
    store
        .insert_clusters(
            std::slice::from_ref(&cluster),
            &[BackupConfig::new_inactive(group.id, cluster.id)],
        )
        .await?;

    let (mut first, mut second, mut read, mut ids) = (vec![], vec![], vec![], vec![]);
    let mut snapshots = Vec::new();
    for round in 0..rounds {
        let commit = first_backup(&cluster, round, chunks);
        let start = Instant::now();
        store.commit_snapshot(&commit).await?;
        first.push(start.elapsed());

        let again = SnapshotCommit {
            snapshot: snapshot(&cluster, chunks),
            new_chunks: vec![],
            uses: commit.uses.clone(),
            lengths: Vec::new(),
        };
        let start = Instant::now();
        store.commit_snapshot(&again).await?;
        second.push(start.elapsed());

        let start = Instant::now();
        let found = store.chunk_locations(cluster.id, &again.uses).await?;
        read.push(start.elapsed());
        assert_eq!(found.len(), chunks as usize);

        let start = Instant::now();
        let all = store.chunk_ids(cluster.id).await?;
        ids.push(start.elapsed());
        assert_eq!(all.len(), (round as usize + 1) * chunks as usize);
        snapshots.push((commit.snapshot.id, again.snapshot.id));
    }

    let size_before_gc: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum();

    // Delete both snapshots of the first round: its chunks become garbage.
    let (a, b) = snapshots[0];
    store.delete_snapshot(cluster.id, a).await?;
    store.delete_snapshot(cluster.id, b).await?;
    let start = Instant::now();
    let emptied = store.collect_garbage(cluster.id).await?;
    let gc = start.elapsed();

    println!(
        "on {} ({chunks} chunks per backup, {rounds} rounds, median):",
        dir.display()
    );
    println!(
        "  commit_snapshot, all {chunks} chunks new:    {:?}",
        median(&mut first)
    );
    println!(
        "  commit_snapshot, all {chunks} chunks reused: {:?}",
        median(&mut second)
    );
    println!(
        "  chunk_locations of {chunks}:                 {:?}",
        median(&mut read)
    );
    println!(
        "  chunk_ids (up to {} ids):               {:?}",
        rounds * chunks,
        median(&mut ids)
    );
    println!(
        "  collect_garbage of {chunks} chunks in {} packs: {gc:?}",
        emptied.len()
    );
    println!(
        "  database and WAL after {} snapshots:     {:.1} MiB",
        2 * rounds,
        size_before_gc as f64 / f64::from(1u32 << 20)
    );
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
