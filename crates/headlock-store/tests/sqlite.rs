//! What is particular to the SQLite backend: the file it creates, its journal, its
//! migrations, and the uniqueness rules the schema itself enforces (checked with raw
//! SQL, under the store).

use std::path::Path;

use headlock_core::model::{Group, User};
use headlock_core::{MetadataStore, ObjectId, StoreError};
use headlock_store::{LATEST_SCHEMA_VERSION, SqlStore, truncate_to_micros};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use time::OffsetDateTime;

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

#[tokio::test]
async fn creates_missing_directory_and_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("headlock.db");
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    assert!(path.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(file_mode, 0o600, "file mode {file_mode:o}");
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode & 0o077, 0, "directory mode {dir_mode:o}");
    }
    store.close().await;
}

#[tokio::test]
async fn uses_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw(&path).await)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    store.close().await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_reports_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
    store.migrate().await.unwrap();
    store.close().await;
    let again = SqlStore::open_sqlite(&path).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut raw(&path).await)
        .await
        .unwrap();
    assert_eq!(applied, LATEST_SCHEMA_VERSION);
}

#[tokio::test]
async fn rejects_database_written_by_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    SqlStore::open_sqlite(&path).await.unwrap().close().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, X'00', 0)",
    )
    .execute(&mut raw(&path).await)
    .await
    .unwrap();
    let err = SqlStore::open_sqlite(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Backend(ref m) if m.contains("9999")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rejects_edited_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    SqlStore::open_sqlite(&path).await.unwrap().close().await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = X'00' WHERE version = 1")
        .execute(&mut raw(&path).await)
        .await
        .unwrap();
    let err = SqlStore::open_sqlite(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

/// Inserts a group and a cluster with raw SQL; returns the cluster id.
async fn raw_cluster(conn: &mut SqliteConnection) -> String {
    let group = ObjectId::new().to_string();
    let cluster = ObjectId::new().to_string();
    sqlx::query(
        "INSERT INTO project_groups (id, name, org_id, created_us) VALUES ($1, 'g', $1, 0)",
    )
    .bind(&group)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO clusters (id, group_id, cluster_name, type_name, created_us) \
         VALUES ($1, $2, 'rs0', 'REPLICA_SET', 0)",
    )
    .bind(&cluster)
    .bind(&group)
    .execute(&mut *conn)
    .await
    .unwrap();
    cluster
}

fn is_unique_violation(r: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(ref e)) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[tokio::test]
async fn schema_allows_one_current_master_key_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    SqlStore::open_sqlite(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    let cluster = raw_cluster(&mut conn).await;
    let insert = "INSERT INTO master_keys (cluster_id, generation, kmip_uid, kmip_server, kmip_name, created_us, \
                  retired_us, rotation_type, requested_by) VALUES ($1, $2, $3, 's', 'n', 0, $4, 'MANUAL', 'a')";
    let retired: Option<i64> = Some(5);
    let current: Option<i64> = None;
    for (generation, uid, retired) in [
        (1i64, "k1", retired),
        (2, "k2", retired),
        (3, "k3", current),
    ] {
        sqlx::query(insert)
            .bind(&cluster)
            .bind(generation)
            .bind(uid)
            .bind(retired)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let second_current = sqlx::query(insert)
        .bind(&cluster)
        .bind(4i64)
        .bind("k4")
        .bind(current)
        .execute(&mut conn)
        .await;
    assert!(is_unique_violation(second_current));
}

#[tokio::test]
async fn schema_allows_one_intent_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    SqlStore::open_sqlite(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    let cluster = raw_cluster(&mut conn).await;
    let insert = "INSERT INTO key_intents (id, cluster_id, key_name, phase, rotation_type, requested_by, created_us) \
                  VALUES ($1, $2, 'n', 'PENDING', 'MANUAL', 'a', 0)";
    sqlx::query(insert)
        .bind(ObjectId::new().to_string())
        .bind(&cluster)
        .execute(&mut conn)
        .await
        .unwrap();
    let second = sqlx::query(insert)
        .bind(ObjectId::new().to_string())
        .bind(&cluster)
        .execute(&mut conn)
        .await;
    assert!(is_unique_violation(second));
}

#[tokio::test]
async fn corrupt_secret_column_error_does_not_quote_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    let store = SqlStore::open_sqlite(&path).await.unwrap();
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
    sqlx::query("UPDATE users SET ha1_md5_hex = $1 WHERE username = 'alice'")
        .bind(secret)
        .execute(&mut raw(&path).await)
        .await
        .unwrap();
    let err = store.user_by_name("alice").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(
        text.contains("ha1_md5_hex") && !text.contains(secret),
        "{text}"
    );
    store.close().await;
}

#[tokio::test]
async fn rejects_corrupt_enum_naming_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    let group = Group {
        id: ObjectId::new(),
        name: "g".into(),
        org_id: ObjectId::new(),
        created: now(),
    };
    store.insert_group(&group).await.unwrap();
    let mut conn = raw(&path).await;
    let cluster = ObjectId::new().to_string();
    sqlx::query(
        "INSERT INTO clusters (id, group_id, cluster_name, type_name, created_us) \
         VALUES ($1, $2, 'rs0', 'MYSTERY', 0)",
    )
    .bind(&cluster)
    .bind(group.id.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    let err = store
        .cluster_any_group(cluster.parse().unwrap())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&cluster) && text.contains("type_name") && text.contains("MYSTERY"),
        "{text}"
    );
    store.close().await;
}

fn is_foreign_key_violation(r: &Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// A snapshot of `cluster` using one chunk, with raw SQL; returns (snapshot, chunk) ids.
async fn raw_snapshot(conn: &mut SqliteConnection, cluster: &str) -> (String, String) {
    let group: String = sqlx::query_scalar("SELECT group_id FROM clusters WHERE id = $1")
        .bind(cluster)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let snapshot = ObjectId::new().to_string();
    let chunk = "ab".repeat(32);
    sqlx::query(
        "INSERT INTO snapshots (id, group_id, cluster_id, created_us, kind, data_size_bytes, \
         stored_size_bytes, file_size_bytes, expires_us, do_not_delete, data_key_id) \
         VALUES ($1, $2, $3, 0, 'stream', 1, 1, 1, NULL, FALSE, $1)",
    )
    .bind(&snapshot)
    .bind(&group)
    .bind(cluster)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, record_length, \
         plaintext_length, stored_by) VALUES ($1, $2, $3, 8, 100, 90, $3)",
    )
    .bind(cluster)
    .bind(&chunk)
    .bind(&snapshot)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO snapshot_chunks (snapshot_id, cluster_id, chunk_id) VALUES ($1, $2, $3)",
    )
    .bind(&snapshot)
    .bind(cluster)
    .bind(&chunk)
    .execute(&mut *conn)
    .await
    .unwrap();
    (snapshot, chunk)
}

/// The guarantees garbage collection and cluster deletion rest on hold in the schema
/// itself, whatever statement runs.
#[tokio::test]
async fn schema_protects_snapshots_and_their_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    SqlStore::open_sqlite(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    let cluster = raw_cluster(&mut conn).await;
    let (snapshot, chunk) = raw_snapshot(&mut conn, &cluster).await;

    let delete_cluster = sqlx::query("DELETE FROM clusters WHERE id = $1")
        .bind(&cluster)
        .execute(&mut conn)
        .await;
    assert!(
        is_foreign_key_violation(&delete_cluster),
        "{delete_cluster:?}"
    );
    let delete_used_chunk = sqlx::query("DELETE FROM chunks WHERE chunk_id = $1")
        .bind(&chunk)
        .execute(&mut conn)
        .await;
    assert!(
        is_foreign_key_violation(&delete_used_chunk),
        "{delete_used_chunk:?}"
    );
    let dangling = sqlx::query(
        "INSERT INTO snapshot_chunks (snapshot_id, cluster_id, chunk_id) VALUES ($1, $2, $3)",
    )
    .bind(&snapshot)
    .bind(&cluster)
    .bind("cd".repeat(32))
    .execute(&mut conn)
    .await;
    assert!(is_foreign_key_violation(&dangling), "{dangling:?}");
    let twice = sqlx::query(
        "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, record_length, \
         plaintext_length, stored_by) VALUES ($1, $2, $3, 8, 100, 90, $3)",
    )
    .bind(&cluster)
    .bind(&chunk)
    .bind(&snapshot)
    .execute(&mut conn)
    .await;
    assert!(is_unique_violation(twice));
}

/// A database at schema version 1 (before snapshots) is brought to the latest version
/// on open, keeping its records.
#[tokio::test]
async fn upgrades_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headlock.db");
    let store = SqlStore::open_sqlite(&path).await.unwrap();
    let group = Group {
        id: ObjectId::new(),
        name: "kept".into(),
        org_id: ObjectId::new(),
        created: now(),
    };
    store.insert_group(&group).await.unwrap();
    store.close().await;
    // Back to version 1: what an older Headlock left.
    let mut conn = raw(&path).await;
    for statement in [
        "DROP TABLE restore_jobs",
        "DROP TABLE snapshot_chunks",
        "DROP TABLE chunks",
        "DROP TABLE snapshots",
        "DELETE FROM _sqlx_migrations WHERE version > 1",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = SqlStore::open_sqlite(&path).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), LATEST_SCHEMA_VERSION);
    assert_eq!(store.group(group.id).await.unwrap(), Some(group));
    assert_eq!(store.snapshot_count(ObjectId::new()).await.unwrap(), 0);
    store.close().await;
}
