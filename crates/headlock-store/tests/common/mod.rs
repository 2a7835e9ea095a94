//! Test harnesses for the two SQL backends: a fresh store in a place of its own, a way
//! to reopen it, and raw connections for what tests do behind the store's back.
//!
//! SQLite: a database file in a fresh temporary directory. PostgreSQL: a fresh database
//! on the test server (`testkit::PostgresDatabase`: `HEADLOCK_TEST_POSTGRES_URL`, or the
//! server `scripts/postgres.sh` runs), dropped at the end of the test.

// Each test binary uses part of this module.
#![allow(dead_code, unused_macros)]

use std::path::PathBuf;
use std::sync::Arc;

use headlock_core::{MetadataStore, StoreError};
use headlock_store::SqlStore;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// What the suites need of a backend beyond the trait.
pub trait Backend: Sized {
    /// A fresh, empty store in its own place (directory, database).
    async fn start() -> Self;
    /// The store under test.
    fn sql_store(&self) -> &Arc<SqlStore>;
    /// The store under test, as the trait.
    fn store(&self) -> Arc<dyn MetadataStore> {
        self.sql_store().clone()
    }
    /// Opens another store on the same database (another node, on PostgreSQL).
    async fn open_again(&self) -> SqlStore {
        self.try_open_again()
            .await
            .expect("open the database again")
    }
    /// [`Backend::open_again`], failures returned.
    async fn try_open_again(&self) -> Result<SqlStore, StoreError>;
    /// Closes the store and opens the same database again.
    async fn reopen(self) -> Self;
    /// A raw connection to the database, beside the store.
    async fn raw(&self) -> Raw;
    /// Runs one statement on a separate raw connection, binding `args` as text to `$1`,
    /// `$2`, ...; the number of rows it changed.
    async fn raw_execute(&self, sql: &str, args: &[&str]) -> u64 {
        let args: Vec<Value> = args.iter().map(|a| Value::Text(a.to_string())).collect();
        let mut raw = self.raw().await;
        let done = raw.execute(sql, &args).await.expect("raw statement");
        raw.close().await;
        done
    }
}

/// SQLite: a database file in a fresh temporary directory.
pub struct SqliteBackend {
    dir: tempfile::TempDir,
    pub path: PathBuf,
    store: Arc<SqlStore>,
}

impl Backend for SqliteBackend {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data").join("headlock.db");
        let store = Arc::new(SqlStore::open_sqlite(&path).await.expect("open sqlite"));
        SqliteBackend { dir, path, store }
    }

    fn sql_store(&self) -> &Arc<SqlStore> {
        &self.store
    }

    async fn try_open_again(&self) -> Result<SqlStore, StoreError> {
        SqlStore::open_sqlite(&self.path).await
    }

    async fn reopen(self) -> Self {
        self.store.close().await;
        let store = Arc::new(self.open_again().await);
        SqliteBackend { store, ..self }
    }

    async fn raw(&self) -> Raw {
        let options = SqliteConnectOptions::new().filename(&self.path);
        Raw::Sqlite(
            SqliteConnection::connect_with(&options)
                .await
                .expect("raw sqlite connection"),
        )
    }
}

/// PostgreSQL: a database of its own on the test server.
pub struct PgBackend {
    // Declared first so the store's pool goes before the database is dropped.
    store: Arc<SqlStore>,
    pub db: testkit::PostgresDatabase,
}

impl PgBackend {
    /// A fresh database on the test server, with no store opened on it.
    pub async fn database() -> testkit::PostgresDatabase {
        tokio::task::spawn_blocking(testkit::PostgresDatabase::create)
            .await
            .expect("creating a database")
            .expect("a PostgreSQL server for tests (scripts/postgres.sh)")
    }
}

impl Backend for PgBackend {
    async fn start() -> Self {
        let db = PgBackend::database().await;
        let store = Arc::new(
            SqlStore::open_postgres(db.url())
                .await
                .expect("open postgres"),
        );
        PgBackend { store, db }
    }

    fn sql_store(&self) -> &Arc<SqlStore> {
        &self.store
    }

    async fn try_open_again(&self) -> Result<SqlStore, StoreError> {
        SqlStore::open_postgres(self.db.url()).await
    }

    async fn reopen(self) -> Self {
        self.store.close().await;
        let store = Arc::new(self.open_again().await);
        PgBackend { store, ..self }
    }

    async fn raw(&self) -> Raw {
        Raw::Postgres(
            PgConnection::connect(self.db.url())
                .await
                .expect("raw postgres connection"),
        )
    }
}

/// A bound value of a raw statement.
#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    Int(i64),
    OptInt(Option<i64>),
    Bytes(Vec<u8>),
}

/// A raw connection to either database.
pub enum Raw {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg.clone() {
                Value::Text(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::OptInt(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
            };
        }
        query
    }};
}

impl Raw {
    /// Runs `sql` with `args` bound to `$1`, `$2`, ...; the rows it changed.
    pub async fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Sqlite(conn) => bind_all!(sqlx::query(sql), args)
                .execute(&mut *conn)
                .await
                .map(|d| d.rows_affected()),
            Raw::Postgres(conn) => bind_all!(sqlx::query(sql), args)
                .execute(&mut *conn)
                .await
                .map(|d| d.rows_affected()),
        }
    }

    /// The one text value `sql` returns.
    pub async fn text(&mut self, sql: &str, args: &[Value]) -> String {
        match self {
            Raw::Sqlite(conn) => bind_all!(sqlx::query_scalar(sql), args)
                .fetch_one(&mut *conn)
                .await
                .expect("raw text"),
            Raw::Postgres(conn) => bind_all!(sqlx::query_scalar(sql), args)
                .fetch_one(&mut *conn)
                .await
                .expect("raw text"),
        }
    }

    /// The one integer `sql` returns.
    pub async fn int(&mut self, sql: &str, args: &[Value]) -> i64 {
        match self {
            Raw::Sqlite(conn) => bind_all!(sqlx::query_scalar(sql), args)
                .fetch_one(&mut *conn)
                .await
                .expect("raw integer"),
            Raw::Postgres(conn) => bind_all!(sqlx::query_scalar(sql), args)
                .fetch_one(&mut *conn)
                .await
                .expect("raw integer"),
        }
    }

    pub async fn close(self) {
        match self {
            Raw::Sqlite(conn) => conn.close().await.expect("close raw connection"),
            Raw::Postgres(conn) => conn.close().await.expect("close raw connection"),
        }
    }
}

/// Whether `r` is the database refusing a statement as a unique violation.
pub fn is_unique_violation<T>(r: &Result<T, sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Whether `r` is the database refusing a statement as a foreign key violation.
pub fn is_foreign_key_violation<T>(r: &Result<T, sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// Stamps out one `#[tokio::test]` per suite function for a backend, in a module named
/// after it (`#[macro_use] mod common;`). The functions of the first list take the
/// [`Backend`]; those of the optional `store:` list need only the store, and take it as
/// `&dyn MetadataStore`.
macro_rules! stamp {
    ($backend:ident: $harness:ty, [$($name:ident),* $(,)?] $(, store: [$($on_store:ident),* $(,)?])?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    suite::$name(<$harness as Backend>::start().await).await;
                }
            )*
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $on_store() {
                    let backend = <$harness as Backend>::start().await;
                    suite::$on_store(&*backend.store()).await;
                }
            )*)?
        }
    };
}
