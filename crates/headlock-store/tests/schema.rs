//! The schema and its migrations, on each backend: versions and checksums, the
//! uniqueness and foreign key rules the schema itself enforces (checked with raw SQL,
//! under the store), and how the store reports rows it cannot read.

use headlock_core::model::{Group, User};
use headlock_core::store::{GroupStore, LeaseStore, SnapshotStore, UserStore};
use headlock_core::{ObjectId, StoreError};
use headlock_store::{LATEST_SCHEMA_VERSION, truncate_to_micros};
use time::OffsetDateTime;

#[macro_use]
mod common;
use common::{
    Backend, PgBackend, Raw, SqliteBackend, Value, is_foreign_key_violation, is_unique_violation,
};

stamp!(sqlite: SqliteBackend, [
    migrate_is_idempotent_and_reports_version,
    rejects_database_written_by_a_newer_version,
    rejects_edited_migration,
    schema_allows_one_current_master_key_per_cluster,
    schema_allows_one_intent_per_cluster,
    schema_allows_one_row_per_lease_and_secret_name,
    corrupt_secret_column_error_does_not_quote_it,
    rejects_corrupt_enum_naming_row_and_column,
    schema_protects_snapshots_and_their_chunks,
    upgrades_a_version_1_database,
    upgrades_version_5_chunk_references_to_pack_references,
]);

stamp!(postgres: PgBackend, [
    migrate_is_idempotent_and_reports_version,
    rejects_database_written_by_a_newer_version,
    rejects_edited_migration,
    schema_allows_one_current_master_key_per_cluster,
    schema_allows_one_intent_per_cluster,
    schema_allows_one_row_per_lease_and_secret_name,
    corrupt_secret_column_error_does_not_quote_it,
    rejects_corrupt_enum_naming_row_and_column,
    schema_protects_snapshots_and_their_chunks,
    upgrades_a_version_1_database,
    upgrades_version_5_chunk_references_to_pack_references,
]);

fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

fn text(v: &str) -> Value {
    Value::Text(v.to_owned())
}

/// Inserts a group and a cluster with raw SQL; returns the cluster id.
async fn raw_cluster(raw: &mut Raw) -> String {
    let group = ObjectId::new().to_string();
    let cluster = ObjectId::new().to_string();
    raw.execute(
        "INSERT INTO project_groups (id, name, org_id, created_us) VALUES ($1, 'g', $1, 0)",
        &[text(&group)],
    )
    .await
    .unwrap();
    raw.execute(
        "INSERT INTO clusters (id, group_id, cluster_name, type_name, created_us) \
         VALUES ($1, $2, 'rs0', 'REPLICA_SET', 0)",
        &[text(&cluster), text(&group)],
    )
    .await
    .unwrap();
    cluster
}

/// A snapshot of `cluster` using one chunk, with raw SQL; returns (snapshot, chunk) ids
/// (the chunk's pack id is the snapshot's).
async fn raw_snapshot(raw: &mut Raw, cluster: &str) -> (String, String) {
    let group = raw
        .text(
            "SELECT group_id FROM clusters WHERE id = $1",
            &[text(cluster)],
        )
        .await;
    let snapshot = ObjectId::new().to_string();
    let chunk = "ab".repeat(32);
    raw.execute(
        "INSERT INTO snapshots (id, group_id, cluster_id, created_us, kind, data_size_bytes, \
         stored_size_bytes, file_size_bytes, expires_us, do_not_delete, data_key_id) \
         VALUES ($1, $2, $3, 0, 'stream', 1, 1, 1, NULL, FALSE, $1)",
        &[text(&snapshot), text(&group), text(cluster)],
    )
    .await
    .unwrap();
    raw.execute(
        "INSERT INTO packs (cluster_id, pack_id) VALUES ($1, $2)",
        &[text(cluster), text(&snapshot)],
    )
    .await
    .unwrap();
    raw.execute(
        "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, record_length, \
         plaintext_length, stored_by) VALUES ($1, $2, $3, 8, 100, 90, $3)",
        &[text(cluster), text(&chunk), text(&snapshot)],
    )
    .await
    .unwrap();
    raw.execute(
        "INSERT INTO snapshot_packs (snapshot_id, cluster_id, pack_id) VALUES ($1, $2, $1)",
        &[text(&snapshot), text(cluster)],
    )
    .await
    .unwrap();
    (snapshot, chunk)
}

mod suite {
    use super::*;

    pub async fn migrate_is_idempotent_and_reports_version(b: impl Backend) {
        let store = b.sql_store();
        assert_eq!(store.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
        store.migrate().await.unwrap();
        store.close().await;
        let again = b.open_again().await;
        assert_eq!(again.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
        let applied = b
            .raw()
            .await
            .int("SELECT COUNT(*) FROM _sqlx_migrations", &[])
            .await;
        assert_eq!(applied, LATEST_SCHEMA_VERSION);
        again.close().await;
    }

    pub async fn rejects_database_written_by_a_newer_version(b: impl Backend) {
        b.sql_store().close().await;
        b.raw()
            .await
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (9999, 'from the future', TRUE, $1, 0)",
                &[Value::Bytes(vec![0])],
            )
            .await
            .unwrap();
        let err = b.try_open_again().await.unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(ref m) if m.contains("9999")),
            "{err:?}"
        );
    }

    pub async fn rejects_edited_migration(b: impl Backend) {
        b.sql_store().close().await;
        b.raw()
            .await
            .execute(
                "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 1",
                &[Value::Bytes(vec![0])],
            )
            .await
            .unwrap();
        let err = b.try_open_again().await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }

    pub async fn schema_allows_one_current_master_key_per_cluster(b: impl Backend) {
        let mut raw = b.raw().await;
        let cluster = raw_cluster(&mut raw).await;
        let insert = "INSERT INTO master_keys (cluster_id, generation, kmip_uid, kmip_server, kmip_name, created_us, \
                      retired_us, rotation_type, requested_by) VALUES ($1, $2, $3, 's', 'n', 0, $4, 'MANUAL', 'a')";
        for (generation, uid, retired) in
            [(1i64, "k1", Some(5)), (2, "k2", Some(5)), (3, "k3", None)]
        {
            raw.execute(
                insert,
                &[
                    text(&cluster),
                    Value::Int(generation),
                    text(uid),
                    Value::OptInt(retired),
                ],
            )
            .await
            .unwrap();
        }
        let second_current = raw
            .execute(
                insert,
                &[
                    text(&cluster),
                    Value::Int(4),
                    text("k4"),
                    Value::OptInt(None),
                ],
            )
            .await;
        assert!(is_unique_violation(&second_current), "{second_current:?}");
    }

    pub async fn schema_allows_one_intent_per_cluster(b: impl Backend) {
        let mut raw = b.raw().await;
        let cluster = raw_cluster(&mut raw).await;
        let insert = "INSERT INTO key_intents (id, cluster_id, key_name, phase, rotation_type, requested_by, created_us) \
                      VALUES ($1, $2, 'n', 'PENDING', 'MANUAL', 'a', 0)";
        raw.execute(
            insert,
            &[text(&ObjectId::new().to_string()), text(&cluster)],
        )
        .await
        .unwrap();
        let second = raw
            .execute(
                insert,
                &[text(&ObjectId::new().to_string()), text(&cluster)],
            )
            .await;
        assert!(is_unique_violation(&second), "{second:?}");
    }

    pub async fn schema_allows_one_row_per_lease_and_secret_name(b: impl Backend) {
        let mut raw = b.raw().await;
        for (sql, value) in [
            (
                "INSERT INTO leases (name, holder, expires_us) VALUES ('job:x', $1, 0)",
                "a",
            ),
            (
                "INSERT INTO shared_secrets (name, value_hex, created_us) VALUES ('k', $1, 0)",
                "00",
            ),
        ] {
            raw.execute(sql, &[text(value)]).await.unwrap();
            let again = raw.execute(sql, &[text(value)]).await;
            assert!(is_unique_violation(&again), "{sql}: {again:?}");
        }
    }

    pub async fn corrupt_secret_column_error_does_not_quote_it(b: impl Backend) {
        let store = b.sql_store();
        let user = User {
            id: ObjectId::new(),
            username: "alice".into(),
            ha1_md5: vec![1; 16],
            ha1_sha256: vec![2; 32],
            roles: vec![],
            access_list: vec![],
            created: now(),
        };
        store.insert_user(&user).await.unwrap();
        let secret = "d41d8cd98f00b204e9800998ecf8427z";
        b.raw()
            .await
            .execute(
                "UPDATE users SET ha1_md5_hex = $1 WHERE username = 'alice'",
                &[text(secret)],
            )
            .await
            .unwrap();
        let err = store.user_by_name("alice").await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert!(
            message.contains("ha1_md5_hex") && !message.contains(secret),
            "{message}"
        );
    }

    pub async fn rejects_corrupt_enum_naming_row_and_column(b: impl Backend) {
        let store = b.sql_store();
        let group = Group {
            id: ObjectId::new(),
            name: "g".into(),
            org_id: ObjectId::new(),
            created: now(),
        };
        store.insert_group(&group).await.unwrap();
        let cluster = ObjectId::new().to_string();
        b.raw()
            .await
            .execute(
                "INSERT INTO clusters (id, group_id, cluster_name, type_name, created_us) \
                 VALUES ($1, $2, 'rs0', 'MYSTERY', 0)",
                &[text(&cluster), text(&group.id.to_string())],
            )
            .await
            .unwrap();
        let err = store
            .cluster_any_group(cluster.parse().unwrap())
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&cluster)
                && message.contains("type_name")
                && message.contains("MYSTERY"),
            "{message}"
        );
    }

    /// The guarantees garbage collection and cluster deletion rest on hold in the schema
    /// itself, whatever statement runs.
    pub async fn schema_protects_snapshots_and_their_chunks(b: impl Backend) {
        let mut raw = b.raw().await;
        let cluster = raw_cluster(&mut raw).await;
        let (snapshot, chunk) = raw_snapshot(&mut raw, &cluster).await;

        let delete_cluster = raw
            .execute("DELETE FROM clusters WHERE id = $1", &[text(&cluster)])
            .await;
        assert!(
            is_foreign_key_violation(&delete_cluster),
            "{delete_cluster:?}"
        );
        // The pack is used by the snapshot and holds the chunk.
        let delete_used_pack = raw
            .execute("DELETE FROM packs WHERE pack_id = $1", &[text(&snapshot)])
            .await;
        assert!(
            is_foreign_key_violation(&delete_used_pack),
            "{delete_used_pack:?}"
        );
        let unrecorded = ObjectId::new().to_string();
        let dangling = raw
            .execute(
                "INSERT INTO snapshot_packs (snapshot_id, cluster_id, pack_id) VALUES ($1, $2, $3)",
                &[text(&snapshot), text(&cluster), text(&unrecorded)],
            )
            .await;
        assert!(is_foreign_key_violation(&dangling), "{dangling:?}");
        let chunk_elsewhere = raw
            .execute(
                "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, record_length, \
                 plaintext_length, stored_by) VALUES ($1, $2, $3, 8, 100, 90, $3)",
                &[text(&cluster), text(&"cd".repeat(32)), text(&unrecorded)],
            )
            .await;
        assert!(
            is_foreign_key_violation(&chunk_elsewhere),
            "{chunk_elsewhere:?}"
        );
        let twice = raw
            .execute(
                "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, record_length, \
                 plaintext_length, stored_by) VALUES ($1, $2, $3, 8, 100, 90, $3)",
                &[text(&cluster), text(&chunk), text(&snapshot)],
            )
            .await;
        assert!(is_unique_violation(&twice), "{twice:?}");
    }

    /// A database at schema version 1 (before snapshots and leases) is brought to the
    /// latest version on open, keeping its records.
    pub async fn upgrades_a_version_1_database(b: impl Backend) {
        let store = b.sql_store();
        let group = Group {
            id: ObjectId::new(),
            name: "kept".into(),
            org_id: ObjectId::new(),
            created: now(),
        };
        store.insert_group(&group).await.unwrap();
        store.close().await;
        // Back to version 1: what an older Headlock left.
        let mut raw = b.raw().await;
        for statement in [
            "DROP TABLE reencryption_jobs",
            "DROP TABLE retired_key_fates",
            "DROP TABLE key_state_errors",
            "DROP TABLE key_lifecycle",
            "DROP TABLE shared_secrets",
            "DROP TABLE leases",
            "DROP TABLE restore_jobs",
            "DROP TABLE snapshot_packs",
            "DROP TABLE chunks",
            "DROP TABLE packs",
            "DROP TABLE snapshots",
            "DELETE FROM _sqlx_migrations WHERE version > 1",
        ] {
            raw.execute(statement, &[]).await.unwrap();
        }
        raw.close().await;

        let store = b.open_again().await;
        assert_eq!(store.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
        assert_eq!(store.group(group.id).await.unwrap(), Some(group));
        assert_eq!(store.snapshot_count(ObjectId::new()).await.unwrap(), 0);
        assert!(
            store
                .acquire_lease("job:x", "a", now(), std::time::Duration::from_secs(1))
                .await
                .unwrap()
        );
        store.close().await;
    }

    /// A database at schema version 5 (a reference per chunk per snapshot) is brought to
    /// pack references on open: each snapshot then names the packs of the chunks it
    /// used, every chunk record is kept, and a pack no snapshot used is garbage.
    pub async fn upgrades_version_5_chunk_references_to_pack_references(b: impl Backend) {
        let store = b.sql_store();
        store.close().await;
        let mut raw = b.raw().await;
        // Back to version 5: the tables as 0002_snapshots.sql made them.
        for statement in [
            "DROP TABLE snapshot_packs",
            "DROP TABLE chunks",
            "DROP TABLE packs",
            "CREATE TABLE chunks (cluster_id TEXT NOT NULL REFERENCES clusters (id), \
             chunk_id TEXT NOT NULL, pack_id TEXT NOT NULL, record_offset BIGINT NOT NULL, \
             record_length BIGINT NOT NULL, plaintext_length BIGINT NOT NULL, \
             stored_by TEXT NOT NULL, PRIMARY KEY (cluster_id, chunk_id))",
            "CREATE INDEX chunks_pack_idx ON chunks (cluster_id, pack_id)",
            "CREATE TABLE snapshot_chunks (snapshot_id TEXT NOT NULL REFERENCES snapshots (id), \
             chunk_id TEXT NOT NULL, cluster_id TEXT NOT NULL, \
             PRIMARY KEY (snapshot_id, chunk_id), \
             FOREIGN KEY (cluster_id, chunk_id) REFERENCES chunks (cluster_id, chunk_id))",
            "CREATE INDEX snapshot_chunks_chunk_idx ON snapshot_chunks (cluster_id, chunk_id)",
            "DELETE FROM _sqlx_migrations WHERE version > 5",
        ] {
            raw.execute(statement, &[]).await.unwrap();
        }
        let cluster = raw_cluster(&mut raw).await;
        let group = raw
            .text(
                "SELECT group_id FROM clusters WHERE id = $1",
                &[text(&cluster)],
            )
            .await;
        let snapshot = ObjectId::new();
        raw.execute(
            "INSERT INTO snapshots (id, group_id, cluster_id, created_us, kind, data_size_bytes, \
             stored_size_bytes, file_size_bytes, expires_us, do_not_delete, data_key_id) \
             VALUES ($1, $2, $3, 0, 'stream', 1, 1, 1, NULL, FALSE, $1)",
            &[text(&snapshot.to_string()), text(&group), text(&cluster)],
        )
        .await
        .unwrap();
        // Chunks 1 and 2 in pack a, 3 in pack b (all used); 4 in pack c (garbage).
        let mut packs = [ObjectId::new(), ObjectId::new(), ObjectId::new()];
        packs.sort_unstable();
        let chunk = |n: u8| format!("{n:02x}").repeat(32);
        for (n, pack, used) in [
            (1, packs[0], true),
            (2, packs[0], true),
            (3, packs[1], true),
            (4, packs[2], false),
        ] {
            raw.execute(
                "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, \
                 record_length, plaintext_length, stored_by) VALUES ($1, $2, $3, $4, 100, 90, $5)",
                &[
                    text(&cluster),
                    text(&chunk(n)),
                    text(&pack.to_string()),
                    Value::Int(i64::from(n) * 100),
                    text(&snapshot.to_string()),
                ],
            )
            .await
            .unwrap();
            if used {
                raw.execute(
                    "INSERT INTO snapshot_chunks (snapshot_id, cluster_id, chunk_id) \
                     VALUES ($1, $2, $3)",
                    &[text(&snapshot.to_string()), text(&cluster), text(&chunk(n))],
                )
                .await
                .unwrap();
            }
        }
        raw.close().await;

        let store = b.open_again().await;
        assert_eq!(store.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
        let cluster: ObjectId = cluster.parse().unwrap();
        assert_eq!(
            store.snapshot_packs(snapshot).await.unwrap(),
            packs[..2].to_vec()
        );
        assert_eq!(store.packs_in_use(cluster).await.unwrap(), packs.to_vec());
        let mut ids = store.chunk_ids(cluster).await.unwrap();
        ids.sort_unstable();
        let mut kept = store.chunk_locations(cluster, &ids).await.unwrap();
        kept.sort_by_key(|l| l.chunk_id);
        let kept: Vec<(String, ObjectId, u64)> = kept
            .iter()
            .map(|l| (l.chunk_id.to_string(), l.pack_id, l.offset))
            .collect();
        assert_eq!(
            kept,
            vec![
                (chunk(1), packs[0], 100),
                (chunk(2), packs[0], 200),
                (chunk(3), packs[1], 300),
                (chunk(4), packs[2], 400),
            ]
        );
        assert_eq!(
            store.collect_garbage(cluster).await.unwrap(),
            vec![packs[2]]
        );
        assert_eq!(store.chunk_ids(cluster).await.unwrap().len(), 3);
        store.close().await;
    }
}
