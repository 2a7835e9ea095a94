//! What is particular to the PostgreSQL backend: URLs and their passwords, the
//! connections it opens, how it waits on row locks where SQLite runs one writer at a
//! time, and how it runs a transaction again when PostgreSQL aborts it as a deadlock
//! victim. (The conformance and schema suites run on PostgreSQL too.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use headlock_core::model::{
    BackupConfig, ChunkId, ChunkLocation, Cluster, ClusterType, Group, IntentPhase, KeyIntent,
    RotationType, SnapshotKind, SnapshotRecord,
};
use headlock_core::store::{GroupStore, LeaseStore, SnapshotCommit};
use headlock_core::{KmipUid, MetadataStore, ObjectId, StoreError};
use headlock_store::{SqlStore, truncate_to_micros};
use time::OffsetDateTime;

mod common;
use common::{Backend, PgBackend, Raw, Value};

fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

fn text(v: &str) -> Value {
    Value::Text(v.to_owned())
}

/// `url` with a password in its user part (one it already has, or a made-up one: the
/// test server trusts loopback, so any password is accepted).
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let password = userinfo.split_once(':').unwrap().1.to_owned();
            (url.to_owned(), password)
        }
        Some((user, host)) => {
            let password = "Pa55-not-to-be-seen".to_owned();
            (
                format!("{scheme}://{user}:{password}@{host}{tail}"),
                password,
            )
        }
        None => {
            let password = "Pa55-not-to-be-seen".to_owned();
            (
                format!("{scheme}://postgres:{password}@{authority}{tail}"),
                password,
            )
        }
    }
}

/// Waits until at least `n` sessions of the test database wait on a lock.
async fn until_waiting_on_locks(raw: &mut Raw, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting = raw
            .int(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await;
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no session of the test database waits on a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A group and replica sets (with their configs) stored through `s`, ids ascending.
async fn clusters(s: &dyn MetadataStore, n: usize) -> (Group, Vec<Cluster>) {
    let group = Group {
        id: ObjectId::new(),
        name: "g".into(),
        org_id: ObjectId::new(),
        created: now(),
    };
    s.insert_group(&group).await.unwrap();
    let mut all: Vec<Cluster> = (0..n)
        .map(|i| Cluster {
            id: ObjectId::new(),
            group_id: group.id,
            cluster_name: format!("rs{i}"),
            type_name: ClusterType::ReplicaSet,
            replica_set_name: Some(format!("rs{i}")),
            shard_name: None,
            parent_cluster_id: None,
            created: now(),
        })
        .collect();
    all.sort_by_key(|c| c.id);
    let configs: Vec<BackupConfig> = all
        .iter()
        .map(|c| BackupConfig::new_inactive(c.group_id, c.id))
        .collect();
    s.insert_clusters(&all, &configs).await.unwrap();
    (group, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_takes_postgres_urls_and_names_its_connections() {
    let db = PgBackend::database().await;
    for url in [
        db.url().to_owned(),
        db.url().replacen("postgres://", "postgresql://", 1),
    ] {
        let store = SqlStore::open(&url).await.unwrap();
        assert_eq!(store.backend(), "postgresql");
        store.ping().await.unwrap();
        let named = store_raw(&url)
            .await
            .int(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'headlock'",
                &[],
            )
            .await;
        assert!(named >= 1, "{named}");
        store.close().await;
    }
}

/// The server closes the store's connections (a restart, a fail-over, an idle timeout
/// elsewhere): once they have been idle for a second, the store finds them dead before
/// use and opens new ones, so no call fails. (Connections used within the last second
/// are not pinged: a round trip per statement was the price.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaces_connections_the_server_closed() {
    let db = PgBackend::database().await;
    let url = format!(
        "{}?application_name=hl-closed-{}",
        db.url(),
        ObjectId::new()
    );
    let name = url.rsplit_once('=').unwrap().1.to_owned();
    let store = SqlStore::open(&url).await.unwrap();
    let (_, parts) = clusters(&store, 4).await;
    // Several connections in the pool, all used.
    let pings = tokio::join!(store.ping(), store.ping(), store.ping(), store.ping());
    assert!(matches!(pings, (Ok(()), Ok(()), Ok(()), Ok(()))));
    let mut raw = store_raw(db.url()).await;
    let terminated = raw
        .int(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[text(&name)],
        )
        .await;
    assert!(terminated >= 1, "{terminated}");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    for _ in 0..3 {
        for part in &parts {
            assert_eq!(
                store
                    .cluster(part.group_id, part.id)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(part)
            );
        }
        store.ping().await.unwrap();
    }
    store.close().await;
}

async fn store_raw(url: &str) -> Raw {
    use sqlx::Connection;
    Raw::Postgres(sqlx::postgres::PgConnection::connect(url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_location_and_errors_hide_the_password() {
    let db = PgBackend::database().await;
    let (url, password) = with_password(db.url());
    let store = SqlStore::open(&url).await.unwrap();
    let shown = format!("{store:?} {}", store.location());
    assert!(!shown.contains(&password), "{shown}");
    assert!(shown.contains(":***@"), "{shown}");
    store.close().await;

    // Nothing listens on port 1: the error names the server, not the password.
    let unreachable = "postgres://headlock:Pa55-not-to-be-seen@127.0.0.1:1/meta";
    let err = SqlStore::open(unreachable).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(!message.contains("Pa55-not-to-be-seen"), "{message}");
    assert!(message.contains("headlock:***@127.0.0.1:1"), "{message}");
}

/// A transaction PostgreSQL aborts as a deadlock victim is run again, and succeeds.
///
/// A raw session locks config B; the store's update of [A, B] locks A (it goes in id
/// order) and waits for B; the raw session then asks for A. The store's session checks
/// for deadlocks first (after `deadlock_timeout`, 1 s; the raw session's is 10 s), finds
/// the cycle, and PostgreSQL aborts the store's transaction, which releases A; the raw
/// session commits, and the store's second run goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_deadlock_victim_again() {
    let b = PgBackend::start().await;
    let store = b.store();
    let (_, all) = clusters(&*store, 2).await;
    let (a, c) = (&all[0], &all[1]);
    let update = "UPDATE backup_configs SET storage_engine_name = 'raw' WHERE cluster_id = $1";

    let mut raw = b.raw().await;
    // The raw session checks for deadlocks only after 10 s, so the store's session (1 s)
    // is the one to find the cycle, even on a loaded machine. (Setting it takes a
    // superuser, which the test server's admin is; elsewhere the store's session still
    // waited first.)
    raw.execute("SET deadlock_timeout = '10s'", &[]).await.ok();
    raw.execute("BEGIN", &[]).await.unwrap();
    raw.execute(update, &[text(&c.id.to_string())])
        .await
        .unwrap();

    let configs: Vec<BackupConfig> = all
        .iter()
        .map(|cl| BackupConfig {
            storage_engine_name: "store".into(),
            ..BackupConfig::new_inactive(cl.group_id, cl.id)
        })
        .collect();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.update_backup_configs(&configs, &[]).await })
    };
    until_waiting_on_locks(&mut b.raw().await, 1).await;
    raw.execute(update, &[text(&a.id.to_string())])
        .await
        .unwrap();
    raw.execute("COMMIT", &[]).await.unwrap();

    writer.await.unwrap().unwrap();
    for cluster in &all {
        let config = store
            .backup_config(cluster.group_id, cluster.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(config.storage_engine_name, "store");
    }
}

fn chunk_id(n: u8) -> ChunkId {
    ChunkId([n; 32])
}

fn snapshot(cluster: &Cluster) -> SnapshotRecord {
    SnapshotRecord {
        id: ObjectId::new(),
        group_id: cluster.group_id,
        cluster_id: cluster.id,
        created: now(),
        kind: SnapshotKind::Stream,
        data_size_bytes: 1,
        stored_size_bytes: 1,
        file_size_bytes: 1,
        expires: None,
        do_not_delete: false,
        data_key_id: ObjectId::new(),
    }
}

/// A garbage collection waits for a snapshot commit in flight (here a raw transaction
/// that references the pack of a garbage chunk) instead of deleting the pack under it and then
/// failing on the foreign key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_waits_for_a_snapshot_commit_in_flight() {
    let b = PgBackend::start().await;
    let store = b.store();
    let (_, all) = clusters(&*store, 1).await;
    let cluster = &all[0];
    let pack = ObjectId::new();
    let old = snapshot(cluster);
    store
        .commit_snapshot(&SnapshotCommit {
            snapshot: old.clone(),
            new_chunks: vec![ChunkLocation {
                cluster_id: cluster.id,
                chunk_id: chunk_id(7),
                pack_id: pack,
                offset: 8,
                length: 100,
                plaintext_length: 90,
                stored_by: old.id,
            }],
            uses: vec![chunk_id(7)],
            lengths: Vec::new(),
        })
        .await
        .unwrap();
    store.delete_snapshot(cluster.id, old.id).await.unwrap();

    // A commit in flight: its snapshot row and its reference to the garbage chunk's pack.
    let newer = snapshot(cluster);
    let mut raw = b.raw().await;
    raw.execute("BEGIN", &[]).await.unwrap();
    raw.execute(
        "INSERT INTO snapshots (id, group_id, cluster_id, created_us, kind, data_size_bytes, \
         stored_size_bytes, file_size_bytes, expires_us, do_not_delete, data_key_id) \
         VALUES ($1, $2, $3, 0, 'stream', 1, 1, 1, NULL, FALSE, $1)",
        &[
            text(&newer.id.to_string()),
            text(&cluster.group_id.to_string()),
            text(&cluster.id.to_string()),
        ],
    )
    .await
    .unwrap();
    raw.execute(
        "INSERT INTO snapshot_packs (snapshot_id, cluster_id, pack_id) VALUES ($1, $2, $3)",
        &[
            text(&newer.id.to_string()),
            text(&cluster.id.to_string()),
            text(&pack.to_string()),
        ],
    )
    .await
    .unwrap();

    let collection = {
        let store = Arc::clone(&store);
        let id = cluster.id;
        tokio::spawn(async move { store.collect_garbage(id).await })
    };
    until_waiting_on_locks(&mut b.raw().await, 1).await;
    raw.execute("COMMIT", &[]).await.unwrap();

    assert_eq!(collection.await.unwrap().unwrap(), vec![]);
    assert_eq!(
        store.chunk_ids(cluster.id).await.unwrap(),
        vec![chunk_id(7)]
    );
    assert_eq!(store.snapshot_packs(newer.id).await.unwrap(), vec![pack]);
}

/// A key change's claim (the intent's insert, which checks that the key it starts from
/// is still current) waits for a commit of the cluster's key in flight, and is then
/// refused: without the lock it would read the key as still current from its snapshot,
/// and record an intent from a retired key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_waits_for_a_key_commit_in_flight_and_is_refused() {
    let b = PgBackend::start().await;
    let store = b.store();
    let (_, all) = clusters(&*store, 1).await;
    let cluster = all[0].id;
    let insert_key = "INSERT INTO master_keys (cluster_id, generation, kmip_uid, kmip_server, \
                      kmip_name, created_us, retired_us, rotation_type, requested_by) \
                      VALUES ($1, $2, $3, 's', $3, 0, NULL, 'MANUAL', 'a')";
    let mut raw = b.raw().await;
    let id = text(&cluster.to_string());
    raw.execute(insert_key, &[id.clone(), Value::Int(1), text("k1")])
        .await
        .unwrap();
    let intent = |previous: &str| KeyIntent {
        id: ObjectId::new(),
        cluster_id: cluster,
        key_name: format!("headlock-{cluster}-{previous}"),
        previous_uid: Some(KmipUid::from(previous)),
        new_uid: None,
        phase: IntentPhase::Pending,
        rotation_type: RotationType::Manual,
        requested_by: "alice".into(),
        created: now(),
    };

    // A commit in flight, as the store's: k1 retired, k2 current.
    raw.execute("BEGIN", &[]).await.unwrap();
    raw.execute(
        "UPDATE master_keys SET retired_us = 1 WHERE cluster_id = $1 AND retired_us IS NULL",
        std::slice::from_ref(&id),
    )
    .await
    .unwrap();
    raw.execute(insert_key, &[id.clone(), Value::Int(2), text("k2")])
        .await
        .unwrap();

    let claim = {
        let store = Arc::clone(&store);
        let stale = intent("k1");
        tokio::spawn(async move { store.insert_intent(&stale).await })
    };
    until_waiting_on_locks(&mut b.raw().await, 1).await;
    raw.execute("COMMIT", &[]).await.unwrap();

    let refused = claim.await.unwrap().unwrap_err();
    assert!(
        matches!(refused, StoreError::Precondition(_)),
        "{refused:?}"
    );
    assert_eq!(store.intents().await.unwrap(), vec![]);
    let current = intent("k2");
    store.insert_intent(&current).await.unwrap();
    assert_eq!(store.intents().await.unwrap(), vec![current]);
}
