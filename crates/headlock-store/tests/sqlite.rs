//! What is particular to the SQLite backend: the file it creates and its journal. (The
//! schema and migration tests run on both backends, in `schema.rs`.)

use std::path::Path;

use headlock_store::SqlStore;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
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
async fn open_takes_sqlite_urls_and_plain_paths() {
    let dir = tempfile::tempdir().unwrap();
    for (n, url) in [
        format!("sqlite://{}", dir.path().join("a.db").display()),
        format!("sqlite:{}", dir.path().join("b.db").display()),
        dir.path().join("c.db").display().to_string(),
    ]
    .iter()
    .enumerate()
    {
        let store = SqlStore::open(url).await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        assert!(
            dir.path().join(["a.db", "b.db", "c.db"][n]).is_file(),
            "{url}"
        );
        assert_eq!(
            format!("{store:?}"),
            format!("SqlStore {{ sqlite: {:?}, .. }}", store.location())
        );
        store.close().await;
    }
}
