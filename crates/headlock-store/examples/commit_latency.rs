//! Prints how long the store takes to commit a key change (the database half of a
//! rotation) and to verify the audit chain, on a real SQLite file with
//! `synchronous=FULL`, or on PostgreSQL.
//!
//! ```text
//! cargo run --release -p headlock-store --example commit_latency -- [DIR | URL] [ROTATIONS]
//! ```
//!
//! DIR defaults to a fresh temporary directory (mind that /tmp may be tmpfs, where
//! fsync is free); a `postgres://` URL names a database to write into instead (e.g.
//! `$(scripts/postgres.sh url)`: the rows stay there). ROTATIONS defaults to 500.

use std::time::{Duration, Instant};

use headlock_core::model::{
    AuditEvent, BackupConfig, Cluster, ClusterType, DataKeyRecord, Group, IntentPhase, KeyIntent,
    MasterKeyRecord, RotationType,
};
use headlock_core::store::{AuditStore, GroupStore, KeyChange, KeyStore};
use headlock_core::{KmipUid, ObjectId};
use headlock_store::SqlStore;
use time::OffsetDateTime;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tmp = tempfile::tempdir()?;
    let place = args.next();
    let rotations: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(500);
    let (store, path) = match place {
        Some(url) if url.contains("://") => (SqlStore::open(&url).await?, None),
        place => {
            let dir = place.map_or_else(|| tmp.path().to_path_buf(), std::path::PathBuf::from);
            let path = dir.join(format!("bench-{}.db", ObjectId::new()));
            (SqlStore::open_sqlite(&path).await?, Some(path))
        }
    };

    let now = OffsetDateTime::now_utc;
    let group = Group {
        id: ObjectId::new(),
        name: format!("bench-{}", ObjectId::new()),
        org_id: ObjectId::new(),
        created: now(),
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
        created: now(),
    };
    store
        .insert_clusters(
            std::slice::from_ref(&cluster),
            &[BackupConfig::new_inactive(group.id, cluster.id)],
        )
        .await?;

    let mut previous: Option<KmipUid> = None;
    let mut times = Vec::with_capacity(rotations);
    for n in 0..rotations {
        let uid = KmipUid::new(format!("key-{n}"));
        let intent = KeyIntent {
            id: ObjectId::new(),
            cluster_id: cluster.id,
            key_name: format!("headlock-{uid}"),
            previous_uid: previous.clone(),
            new_uid: Some(uid.clone()),
            phase: IntentPhase::NewKeyActive,
            rotation_type: RotationType::Manual,
            requested_by: "bench".into(),
            created: now(),
        };
        store.insert_intent(&intent).await?;
        let change = KeyChange {
            intent_id: intent.id,
            cluster_id: cluster.id,
            expected_current: previous.clone(),
            new_key: MasterKeyRecord {
                cluster_id: cluster.id,
                kmip_uid: uid.clone(),
                kmip_server: "127.0.0.1:5696".into(),
                kmip_name: intent.key_name.clone(),
                created: now(),
                retired: None,
                rotation_type: RotationType::Manual,
                requested_by: "bench".into(),
            },
            retired_at: now(),
            data_keys: (0..4)
                .map(|_| DataKeyRecord {
                    id: ObjectId::new(),
                    cluster_id: cluster.id,
                    wrapped: vec![7; 60],
                    master_key_uid: uid.clone(),
                    created: now(),
                })
                .collect(),
            data_keys_read: None,
            configs: vec![],
            audit: AuditEvent {
                id: ObjectId::new(),
                created: now(),
                event_type: "RS_ROTATE_MASTER_KEY_AUDIT".into(),
                group_id: Some(group.id),
                cluster_id: Some(cluster.id),
                username: Some("bench".into()),
                remote_address: None,
                outcome: "SUCCESS".into(),
                old_key_uid: previous.clone(),
                new_key_uid: Some(uid.clone()),
                detail: None,
            },
            lease: None,
        };
        let start = Instant::now();
        store.commit_key_change(&change).await?;
        times.push(start.elapsed());
        store.delete_intent(intent.id).await?;
        previous = Some(uid);
    }
    times.sort();
    println!(
        "commit_key_change x{rotations} on {} {}: p50 {:?}, p99 {:?}, max {:?}",
        store.backend(),
        store.location(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
    let start = Instant::now();
    let events = store.verify_audit_chain().await?;
    println!(
        "verify_audit_chain: {events} events in {:?}",
        start.elapsed()
    );
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        if let Some(path) = &path {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    Ok(())
}
