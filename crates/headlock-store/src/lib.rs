//! Headlock's stores: every trait of [`headlock_core::store`] (and so
//! [`MetadataStore`](headlock_core::MetadataStore)) on SQL, with embedded migrations, and
//! [`BlobStore`](headlock_core::BlobStore) on `object_store` ([`blob`]).
//!
//! [`SqlStore`] keeps groups, clusters, backup configs, master and data key records,
//! key-change intents, users, the hash-chained audit log, snapshots with their chunk
//! locations and references, restore jobs, and what several nodes share (leases and
//! shared secrets), on one of two databases chosen at run time:
//!
//! * **SQLite** ([`SqlStore::open_sqlite`]), the embedded default: one file, created
//!   0600 in a 0700 directory, WAL journal, `synchronous=FULL`; one writer at a time
//!   (`BEGIN IMMEDIATE`), so one node only.
//! * **PostgreSQL** ([`SqlStore::open_postgres`]), for several nodes on one database:
//!   READ COMMITTED with row locks where a read decides a write, a pool of 10
//!   connections per node, and a write transaction PostgreSQL aborts as a deadlock
//!   victim or serialization failure ([`StoreError::Aborted`]) run again (up to 5 runs,
//!   with jittered exponential pauses, through `backon`) before its error is returned.
//!
//! [`SqlStore::open`] takes either as a URL. A PostgreSQL URL's password never appears
//! in `Debug`, logs or errors ([`SqlStore::location`] is the URL with it hidden).
//!
//! The schema (`migrations/`) and the statements (`queries.rs`) are written once, in the
//! SQL the two share; the few statements that differ are marked `DIALECT:` in
//! `queries.rs`, which also says how each kind of conflict is kept apart on each
//! database. Both backends run one conformance suite (`tests/conformance.rs`).
//!
//! One file per aggregate, each implementing its trait of `headlock_core::store`; this
//! file holds the opening of a store and what they share (the write transaction and its
//! retry, lookups, pages, the cluster row lock):
//!
//! | module | what it holds |
//! |---|---|
//! | `groups` | [`GroupStore`](headlock_core::store::GroupStore): groups, clusters, backup configs |
//! | `keys` | [`KeyStore`](headlock_core::store::KeyStore): master and data keys, intents, the key change |
//! | `lifecycle` | [`KeyLifecycleStore`](headlock_core::store::KeyLifecycleStore): lifecycle settings, key state findings, retired keys' fates (and their statements) |
//! | `reencryption` | [`ReencryptionStore`](headlock_core::store::ReencryptionStore): re-encryption jobs |
//! | `snapshots` | [`SnapshotStore`](headlock_core::store::SnapshotStore): snapshots, garbage collection, restore jobs |
//! | `audit` | [`AuditStore`](headlock_core::store::AuditStore): the audit hash chain and its canonical event encoding |
//! | `leases` | [`LeaseStore`](headlock_core::store::LeaseStore): leases, shared secrets, ping |
//! | `users` | [`UserStore`](headlock_core::store::UserStore): API users |
//! | `queries` | the SQL statements (those of the lifecycle are in `lifecycle`), and the dialect differences |
//! | `db` | the two sqlx drivers behind one interface (and why not sqlx's `Any`) |
//! | `connect` | opening either database; URLs and their redaction |
//! | `rows` | records to rows and back: ids, times, enums, JSON lists, hex bytes |
//! | `chunks` | a snapshot's chunk rows and references, for a commit and a re-encryption |
//! | `migrations` | the embedded migrations, run through sqlx's `Migrator` |
//! | [`blob`] | [`ObjectBlobStore`]: packs and manifests in a local directory or S3 |
//! | `error` | sqlx errors to [`StoreError`] |
//!
//! Storage choices, fixed by `migrations/0001_initial.sql`:
//! * times are `BIGINT` unix microseconds, UTC: records read back with sub-microsecond
//!   digits dropped and the offset set to UTC ([`truncate_to_micros`] gives the value a
//!   time reads back as);
//! * ids are 24-hex-digit `TEXT`; byte strings are hex `TEXT` (no binary columns);
//! * every rule of uniqueness is a (partial) unique index, and breaking one is
//!   [`StoreError::Conflict`] naming the rule ([`headlock_core::StoreConflict`]);
//! * snapshot references are a foreign key to the chunks they use
//!   (`migrations/0002_snapshots.sql`), so no commit can refer to a chunk garbage
//!   collection removed, and no collection can remove a chunk in use.
//!
//! The store never reads the clock: every time it records (a key's retirement, a
//! destruction claim, a lease's expiry, a shared secret's creation) is the caller's.
//!
//! A cluster with snapshots, or with chunks not yet collected, cannot be deleted
//! ([`StoreError::Precondition`]); its restore jobs go with it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use headlock_core::model::Group;
//! use headlock_core::ObjectId;
//! use headlock_core::store::GroupStore;
//! use headlock_store::SqlStore;
//!
//! let dir = tempfile::tempdir()?;
//! // Or SqlStore::open("postgres://headlock:...@db.internal/headlock").
//! let url = format!("sqlite://{}", dir.path().join("meta/headlock.db").display());
//! let store = SqlStore::open(&url).await?;
//! assert_eq!(store.backend(), "sqlite");
//! let group = Group {
//!     id: ObjectId::new(),
//!     name: "payments".into(),
//!     org_id: ObjectId::new(),
//!     created: headlock_store::truncate_to_micros(time::OffsetDateTime::now_utc()),
//! };
//! store.insert_group(&group).await?;
//! assert_eq!(store.group_by_name("payments").await?, Some(group));
//! assert_eq!(store.schema_version().await?, headlock_store::LATEST_SCHEMA_VERSION);
//! store.close().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod audit;
pub mod blob;
mod chunks;
mod connect;
mod db;
mod error;
mod groups;
mod keys;
mod leases;
mod lifecycle;
mod migrations;
mod queries;
mod reencryption;
mod rows;
mod snapshots;
mod users;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use headlock_core::model::Page;
use headlock_core::{ObjectId, StoreError};

use crate::db::{Pool, Row, Sql, Tx, stmt};
use crate::error::{classify, ctx};
use crate::queries as q;
use crate::rows::id_text;

pub use crate::blob::S3Config;
pub use crate::blob::{LocalBlobStore, ObjectBlobStore};
pub use crate::migrations::LATEST_SCHEMA_VERSION;
pub use crate::rows::truncate_to_micros;

/// Runs of one write transaction when PostgreSQL aborts it as a deadlock victim or a
/// serialization failure (it rolled the whole transaction back, so another run cannot
/// apply anything twice); the last failure is returned.
const TRANSACTION_ATTEMPTS: usize = 5;

/// The pause before the second run of a transaction; it doubles for each run after,
/// plus up to as much again at random, so that two victims of one deadlock do not meet
/// again.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The metadata store on SQL. Cheap to clone (the clones share one pool).
#[derive(Clone)]
pub struct SqlStore {
    pool: Pool,
    /// The file, or the URL with its password hidden.
    location: String,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field(self.backend(), &self.location)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Opens the database `database_url` names and brings its schema up to date:
    /// `postgres://...` or `postgresql://...` is [`SqlStore::open_postgres`];
    /// `sqlite://PATH`, `sqlite:PATH` or a plain path is [`SqlStore::open_sqlite`] (the
    /// path as written: no percent-decoding, no options). Any other scheme is refused.
    /// Errors never quote the URL's password.
    pub async fn open(database_url: &str) -> Result<SqlStore, StoreError> {
        match connect::target(database_url)? {
            connect::Target::Postgres(url) => SqlStore::open_postgres(url).await,
            connect::Target::Sqlite(path) => SqlStore::open_sqlite(&path).await,
        }
    }

    /// Opens (creating if missing) the SQLite database at `path` and brings its schema up
    /// to date.
    ///
    /// A missing parent directory is created with mode 0700 and a missing file with mode
    /// 0600 (it holds digest secrets). Every connection runs in WAL mode with
    /// `synchronous=FULL` (a committed transaction survives power loss), foreign keys on,
    /// and a busy timeout, so concurrent writers queue instead of failing.
    pub async fn open_sqlite(path: &Path) -> Result<SqlStore, StoreError> {
        let store = SqlStore {
            pool: connect::sqlite(path).await?,
            location: path.display().to_string(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`,
    /// with libpq's parameters such as `sslmode`) and brings its schema up to date.
    ///
    /// The pool holds up to 10 connections; opening waits at most 10 s for the first,
    /// a statement at most 30 s for a free one. Several nodes may open one database at
    /// once: migrations run under sqlx's advisory lock. The password is kept only inside
    /// the driver's options.
    pub async fn open_postgres(url: &str) -> Result<SqlStore, StoreError> {
        let location = connect::redact(url);
        let store = SqlStore {
            pool: connect::postgres(url, &location).await?,
            location,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgresql"`.
    pub fn backend(&self) -> &'static str {
        self.pool.backend().name()
    }

    /// Where the data is: the SQLite file, or the PostgreSQL URL with its password
    /// replaced by `***` (safe to log).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Applies the migrations this build has and the database lacks. Idempotent; fails
    /// if an applied migration was edited or the database has one this build does not
    /// know (written by a newer version).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let op = format!("migrating {}", self.location);
        let migrator = migrations::migrator()
            .await
            .map_err(|e| StoreError::Backend(format!("{op}: {e}")))?;
        match &self.pool {
            Pool::Sqlite(pool) => migrator.run(pool).await,
            Pool::Postgres(pool) => migrator.run(pool).await,
        }
        .map_err(|e| StoreError::Backend(format!("{op}: {e}")))
    }

    /// The highest migration applied (0 for a database never migrated).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        stmt(q::SCHEMA_VERSION)
            .fetch_i64(&self.pool)
            .await
            .map_err(ctx("schema version"))
    }

    /// Closes every connection (waiting for those in use); on SQLite this checkpoints
    /// the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction (SQLite: `BEGIN IMMEDIATE`, which waits for the write
    /// lock up front, so that concurrent writers serialise instead of failing with
    /// `SQLITE_BUSY` half-way; PostgreSQL: `BEGIN`).
    async fn begin_write(&self, op: &str) -> Result<Tx, StoreError> {
        self.pool.begin(q::BEGIN_WRITE).await.map_err(ctx(op))
    }

    async fn count(
        &self,
        query: &'static str,
        group: Option<ObjectId>,
        op: &str,
    ) -> Result<u64, StoreError> {
        let mut query = stmt(query);
        if let Some(group) = group {
            query = query.bind(id_text(group));
        }
        let n = query.fetch_i64(&self.pool).await.map_err(ctx(op))?;
        Ok(to_u64(n))
    }

    /// The row `query` finds for `ids` (bound in order), decoded; `what` names the
    /// read for the error, and is only built when there is one.
    async fn find<T>(
        &self,
        query: &'static str,
        ids: &[ObjectId],
        what: impl FnOnce() -> String,
        decode: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut q = stmt(query);
        for id in ids {
            q = q.bind(id_text(*id));
        }
        let row = q
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(&what(), e))?;
        row.as_ref().map(decode).transpose()
    }

    /// One page of `list` (bound: the owner's id when given, then LIMIT and OFFSET),
    /// decoded, and the total from `count` (bound: the same id).
    async fn list_page<T>(
        &self,
        (list, count): (&'static str, &'static str),
        owner: Option<ObjectId>,
        page: Page,
        op: &str,
        decode: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let (limit, offset) = limit_offset(page);
        let mut query = stmt(list);
        if let Some(id) = owner {
            query = query.bind(id_text(id));
        }
        let found = query
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx(op))?;
        let items = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((items, self.count(count, owner, op).await?))
    }

    /// Takes the row lock `lock` (a `DIALECT:` read of `queries.rs`) on `cluster`
    /// inside `tx`; whether the cluster exists.
    async fn lock_cluster(
        tx: &mut Tx,
        lock: Sql,
        cluster: ObjectId,
        op: &str,
    ) -> Result<bool, StoreError> {
        let found = stmt(lock)
            .bind(id_text(cluster))
            .fetch_all(tx)
            .await
            .map_err(ctx(op))?;
        Ok(!found.is_empty())
    }
}

/// Runs the write transaction `run` makes, again (after a short, jittered pause) while it
/// fails with an error that [`StoreError::is_transient`] accepts (PostgreSQL aborted it
/// as a deadlock victim or a serialization failure), up to [`TRANSACTION_ATTEMPTS`]
/// runs. `what` names it in the debug log.
async fn retrying<T, F, Fut>(what: &str, run: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut seed = [0u8; 8];
    // Without randomness the pauses are jittered alike on every node; still bounded.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY_PAUSE)
        .with_factor(2.0)
        .with_max_times(TRANSACTION_ATTEMPTS - 1)
        .with_jitter()
        .with_jitter_seed(u64::from_le_bytes(seed));
    run.retry(backoff)
        .when(StoreError::is_transient)
        .notify(|e, pause| {
            tracing::debug!(
                transaction = what,
                error = %e,
                ?pause,
                "the database aborted the transaction; running it again"
            );
        })
        .await
}

/// `LIMIT` and `OFFSET` of a page.
fn limit_offset(page: Page) -> (i64, i64) {
    (
        i64::from(page.size),
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
    )
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pooled connection carries the settings durability and concurrency rest on.
    #[tokio::test]
    async fn connections_are_durable_and_wait_for_locks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open_sqlite(&dir.path().join("h.db"))
            .await
            .unwrap();
        let mut conns = Vec::new();
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("not a SQLite pool");
        };
        for _ in 0..connect::SQLITE_POOL_SIZE {
            conns.push(pool.acquire().await.unwrap());
        }
        for conn in &mut conns {
            let pragma = |name: &'static str| sqlx::query_scalar::<_, i64>(name);
            // synchronous: 2 = FULL.
            assert_eq!(
                pragma("PRAGMA synchronous")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap(),
                2
            );
            assert_eq!(
                pragma("PRAGMA foreign_keys")
                    .fetch_one(&mut **conn)
                    .await
                    .unwrap(),
                1
            );
            let busy = pragma("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(
                busy,
                i64::try_from(connect::BUSY_TIMEOUT.as_millis()).unwrap()
            );
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal");
        }
        drop(conns);
        store.close().await;
    }
}
