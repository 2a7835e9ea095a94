//! Headlock's stores: [`MetadataStore`] on SQL, with embedded migrations, and
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
//!   connections per node, and a transaction PostgreSQL aborts as a deadlock victim or
//!   serialization failure run again (up to 5 times) before its error is returned.
//!
//! [`SqlStore::open`] takes either as a URL. A PostgreSQL URL's password never appears
//! in `Debug`, logs or errors ([`SqlStore::location`] is the URL with it hidden).
//!
//! The schema (`migrations/`) and the statements (`queries.rs`) are written once, in the
//! SQL the two share; the few statements that differ are marked `DIALECT:` in
//! `queries.rs`, which also says how each kind of conflict is kept apart on each
//! database. Both backends run one conformance suite (`tests/conformance.rs`).
//!
//! | module | what it holds |
//! |---|---|
//! | `queries` | every SQL statement, and the dialect differences |
//! | `db` | the two sqlx drivers behind one interface (and why not sqlx's `Any`) |
//! | `connect` | opening either database; URLs and their redaction |
//! | `rows` | records to rows and back: ids, times, enums, JSON lists, hex bytes |
//! | `audit` | the audit hash chain and its canonical event encoding |
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
//!   [`StoreError::Conflict`];
//! * snapshot references are a foreign key to the chunks they use
//!   (`migrations/0002_snapshots.sql`), so no commit can refer to a chunk garbage
//!   collection removed, and no collection can remove a chunk in use.
//!
//! A cluster with snapshots, or with chunks not yet collected, cannot be deleted
//! ([`StoreError::Precondition`]); its restore jobs go with it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use headlock_core::model::Group;
//! use headlock_core::{MetadataStore, ObjectId};
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
mod lifecycle;
mod migrations;
mod queries;
mod reencryption;
mod rows;

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use headlock_core::model::ReencryptionJob;
use headlock_core::model::{
    AuditEvent, BackupConfig, ChunkId, ChunkLocation, Cluster, DataKeyRecord, Group, IntentPhase,
    KeyIntent, MasterKeyRecord, Page, RestoreJob, SnapshotRecord, User,
};
use headlock_core::store::{KeyChange, Lease, SnapshotCommit};
use headlock_core::store::{ReencryptCommit, ReencryptFinish};
use headlock_core::{MetadataStore, ObjectId, StoreError};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::chunks::SnapshotChunks;
use crate::db::{Attempt, Pool, Row, Sql, Tx, stmt};
use crate::error::{classify, ctx};
use crate::queries as q;
use crate::rows::{bigint, id_text, json_list, micros, opt_id_text, roles_json, secret_hex};

pub use crate::blob::S3Config;
pub use crate::blob::{LocalBlobStore, ObjectBlobStore};
pub use crate::migrations::LATEST_SCHEMA_VERSION;
pub use crate::rows::truncate_to_micros;

/// Audit events read per query while verifying the chain (bounds memory).
const VERIFY_BATCH: i64 = 512;

/// Runs of one write transaction when PostgreSQL aborts it as a deadlock victim or a
/// serialization failure (it rolled the whole transaction back, so another run cannot
/// apply anything twice); the last failure is returned.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// The longest lease or shared-secret name, lease holder or lease prefix, in bytes.
const MAX_NAME: usize = 512;

/// The longest shared secret, in bytes.
const MAX_SECRET: usize = 4096;

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
    async fn begin_write(&self, op: &str, attempt: &Arc<Attempt>) -> Result<Tx, StoreError> {
        self.pool
            .begin(q::BEGIN_WRITE, Some(attempt))
            .await
            .map_err(ctx(op))
    }

    /// Runs the write transaction `run` makes, again (after a short, jittered pause)
    /// while PostgreSQL aborts it as a deadlock victim or a serialization failure, up to
    /// [`TRANSACTION_ATTEMPTS`] runs. `what` names it in the debug log.
    async fn retrying<T, F, Fut>(&self, what: &str, mut run: F) -> Result<T, StoreError>
    where
        F: FnMut(Arc<Attempt>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut runs = 1;
        loop {
            let attempt = Arc::new(Attempt::default());
            match run(Arc::clone(&attempt)).await {
                Err(e) if attempt.was_transient() && runs < TRANSACTION_ATTEMPTS => {
                    tracing::debug!(
                        transaction = what,
                        run = runs,
                        error = %e,
                        "the database aborted the transaction; running it again"
                    );
                    tokio::time::sleep(retry_pause(runs)).await;
                    runs += 1;
                }
                done => return done,
            }
        }
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

/// The pause before run `runs + 1` of a transaction: 10 ms doubled per run, plus up to
/// as much again at random, so that two victims of one deadlock do not meet again.
fn retry_pause(runs: u32) -> Duration {
    let base = 10u64 << runs.min(6);
    let mut jitter = [0u8; 2];
    // Without randomness the pause is just not jittered.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jitter);
    Duration::from_millis(base + u64::from(u16::from_le_bytes(jitter)) % base)
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

/// Refuses an empty name, or one longer than [`MAX_NAME`] bytes.
fn check_name(what: &str, name: &str, op: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(StoreError::Precondition(format!(
            "{op}: the {what} must be 1 to {MAX_NAME} bytes long, not {}",
            name.len()
        )));
    }
    Ok(())
}

/// Appends `event` to the audit chain inside the caller's write transaction.
async fn append_audit_in(tx: &mut Tx, event: &AuditEvent) -> Result<(), StoreError> {
    let op = || format!("appending audit event {}", event.id);
    let head = stmt(q::AUDIT_HEAD_FOR_UPDATE)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    let seq: i64 = head.try_get("seq").map_err(|e| classify(&op(), e))?;
    let prev_text: String = head.try_get("hash").map_err(|e| classify(&op(), e))?;
    let prev = audit::parse_hash(&prev_text).ok_or_else(|| {
        StoreError::Backend(format!("{}: audit_head.hash is not a SHA-256 in hex", op()))
    })?;
    let seq = seq
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend(format!("{}: audit sequence exhausted", op())))?;
    let hash = hex::encode(audit::chain_hash(&prev, seq, event));
    stmt(q::INSERT_AUDIT)
        .bind(seq)
        .bind(id_text(event.id))
        .bind(micros(event.created))
        .bind(&event.event_type)
        .bind(opt_id_text(event.group_id))
        .bind(opt_id_text(event.cluster_id))
        .bind(&event.username)
        .bind(&event.remote_address)
        .bind(&event.outcome)
        .bind(&event.old_key_uid)
        .bind(&event.new_key_uid)
        .bind(&event.detail)
        .bind(&prev_text)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    stmt(q::SET_AUDIT_HEAD)
        .bind(seq)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    Ok(())
}

/// Rewrites backup configs inside the caller's transaction, in cluster id order (so that
/// two transactions that rewrite the same configs on PostgreSQL lock their rows in one
/// order, and cannot deadlock on them); `NotFound` if a cluster has no config in that
/// group. A config listed twice is written twice, in the order given.
async fn update_configs_in(tx: &mut Tx, configs: &[BackupConfig]) -> Result<(), StoreError> {
    let mut ordered: Vec<&BackupConfig> = configs.iter().collect();
    ordered.sort_by_key(|c| c.cluster_id);
    for config in ordered {
        update_config_in(tx, config).await?;
    }
    Ok(())
}

/// Rewrites one backup config inside the caller's transaction; `NotFound` if the cluster
/// has no config in that group.
async fn update_config_in(tx: &mut Tx, config: &BackupConfig) -> Result<(), StoreError> {
    let op = || format!("updating backup config of cluster {}", config.cluster_id);
    let done = stmt(q::UPDATE_CONFIG)
        .bind(id_text(config.cluster_id))
        .bind(id_text(config.group_id))
        .bind(config.status.as_str())
        .bind(config.encryption_enabled)
        .bind(&config.storage_engine_name)
        .bind(config.ssl_enabled)
        .bind(json_list(&config.excluded_namespaces))
        .bind(json_list(&config.included_namespaces))
        .bind(config.auth_mechanism.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| classify(&op(), e))?;
    if done == 0 {
        return Err(StoreError::NotFound(format!(
            "{}: no backup config for cluster {} in group {}",
            op(),
            config.cluster_id,
            config.group_id
        )));
    }
    Ok(())
}

/// A pack id read from the chunks table.
fn parse_pack_id(text: &str, op: &str) -> Result<ObjectId, StoreError> {
    text.parse().map_err(|_| {
        StoreError::Backend(format!(
            "{op}: table chunks holds a pack id that is not 24 hex digits"
        ))
    })
}

/// The write transactions, each run by [`SqlStore::retrying`] from its trait method.
impl SqlStore {
    async fn insert_clusters_once(
        &self,
        clusters: &[Cluster],
        configs: &[BackupConfig],
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write("inserting clusters", &attempt).await?;
        // Whole clusters before their parts, so that parent references resolve.
        let ordered = clusters
            .iter()
            .filter(|c| c.parent_cluster_id.is_none())
            .chain(clusters.iter().filter(|c| c.parent_cluster_id.is_some()));
        for c in ordered {
            stmt(q::INSERT_CLUSTER)
                .bind(id_text(c.id))
                .bind(id_text(c.group_id))
                .bind(&c.cluster_name)
                .bind(c.type_name.as_str())
                .bind(&c.replica_set_name)
                .bind(&c.shard_name)
                .bind(opt_id_text(c.parent_cluster_id))
                .bind(micros(c.created))
                .execute(&mut tx)
                .await
                .map_err(|e| {
                    classify(
                        &format!(
                            "inserting cluster {} named {:?} in group {}",
                            c.id, c.cluster_name, c.group_id
                        ),
                        e,
                    )
                })?;
        }
        for b in configs {
            stmt(q::INSERT_CONFIG)
                .bind(id_text(b.cluster_id))
                .bind(id_text(b.group_id))
                .bind(b.status.as_str())
                .bind(b.encryption_enabled)
                .bind(&b.storage_engine_name)
                .bind(b.ssl_enabled)
                .bind(json_list(&b.excluded_namespaces))
                .bind(json_list(&b.included_namespaces))
                .bind(b.auth_mechanism.as_str())
                .execute(&mut tx)
                .await
                .map_err(|e| {
                    classify(
                        &format!("inserting backup config of cluster {}", b.cluster_id),
                        e,
                    )
                })?;
        }
        tx.commit()
            .await
            .map_err(ctx("committing inserted clusters"))
    }

    async fn delete_cluster_once(
        &self,
        group: ObjectId,
        id: ObjectId,
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let op = format!("deleting cluster {id} of group {group}");
        let mut tx = self.begin_write(&op, &attempt).await?;
        // PostgreSQL: waits for (and then holds off) writes that refer to the cluster or
        // a part, e.g. a snapshot commit in flight, so the counts below see them.
        SqlStore::lock_cluster(&mut tx, q::CLUSTER_TREE_LOCK, id, &op).await?;
        let exists = stmt(q::CLUSTER_IN_GROUP)
            .bind(id_text(group))
            .bind(id_text(id))
            .fetch_optional(&mut tx)
            .await
            .map_err(ctx(&op))?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!(
                "{op}: no such cluster in the group"
            )));
        }
        // Snapshots and chunks are backups: never dropped with their cluster. (The schema
        // refuses it too; this says why.)
        for (count, what) in [
            (q::COUNT_TREE_SNAPSHOTS, "snapshots: delete them first"),
            (
                q::COUNT_TREE_CHUNKS,
                "stored chunks no snapshot uses: collect garbage first",
            ),
        ] {
            let n = stmt(count)
                .bind(id_text(id))
                .fetch_i64(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if n > 0 {
                return Err(StoreError::Precondition(format!(
                    "{op}: the cluster (or a part of it) has {n} {what}"
                )));
            }
        }
        for statement in [
            q::DELETE_TREE_RESTORE_JOBS,
            q::DELETE_TREE_DATA_KEYS,
            q::DELETE_TREE_MASTER_KEYS,
            q::DELETE_TREE_INTENTS,
            lifecycle::DELETE_TREE_LIFECYCLE,
            lifecycle::DELETE_TREE_KEY_ERRORS,
            lifecycle::DELETE_TREE_FATES,
            q::DELETE_TREE_CONFIGS,
            q::DELETE_CLUSTER_PARTS,
            q::DELETE_CLUSTER,
        ] {
            stmt(statement)
                .bind(id_text(id))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
        }
        tx.commit().await.map_err(ctx(&op))
    }

    async fn update_backup_configs_once(
        &self,
        configs: &[BackupConfig],
        audit: &[AuditEvent],
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write("updating backup configs", &attempt)
            .await?;
        update_configs_in(&mut tx, configs).await?;
        for event in audit {
            append_audit_in(&mut tx, event).await?;
        }
        tx.commit().await.map_err(ctx("committing backup configs"))
    }

    async fn commit_key_change_once(
        &self,
        change: &KeyChange,
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let cluster = change.cluster_id;
        let new_uid = &change.new_key.kmip_uid;
        let op = format!("committing master key {new_uid:?} for cluster {cluster}");
        // The records must all be about this cluster and this key; refuse before writing.
        if change.new_key.cluster_id != cluster {
            return Err(StoreError::Precondition(format!(
                "{op}: the new key record is for cluster {}",
                change.new_key.cluster_id
            )));
        }
        if let Some(dk) = change
            .data_keys
            .iter()
            .find(|dk| dk.cluster_id != cluster || &dk.master_key_uid != new_uid)
        {
            return Err(StoreError::Precondition(format!(
                "{op}: data key {} is for cluster {} under master key {:?}",
                dk.id, dk.cluster_id, dk.master_key_uid
            )));
        }

        let mut tx = self.begin_write(&op, &attempt).await?;
        if !SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await? {
            return Err(StoreError::NotFound(format!("{op}: no such cluster")));
        }

        // The precondition: the current key is the one the change started from.
        let current = stmt(q::CURRENT_KEY_FOR_UPDATE)
            .bind(id_text(cluster))
            .fetch_optional(&mut tx)
            .await
            .map_err(ctx(&op))?;
        let current = match &current {
            Some(row) => {
                let uid: String = row.try_get("kmip_uid").map_err(ctx(&op))?;
                let generation: i64 = row.try_get("generation").map_err(ctx(&op))?;
                Some((uid, generation))
            }
            None => None,
        };
        let current_uid = current.as_ref().map(|(uid, _)| uid.as_str());
        if current_uid != change.expected_current.as_deref() {
            return Err(StoreError::Precondition(format!(
                "{op}: the current master key is {current_uid:?}, not the expected {:?}",
                change.expected_current
            )));
        }

        if let Some((_, generation)) = &current {
            stmt(q::RETIRE_KEY)
                .bind(id_text(cluster))
                .bind(*generation)
                .bind(micros(OffsetDateTime::now_utc()))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
        }
        let generation = stmt(q::NEXT_GENERATION)
            .bind(id_text(cluster))
            .fetch_i64(&mut tx)
            .await
            .map_err(ctx(&op))?;
        let key = &change.new_key;
        stmt(q::INSERT_KEY)
            .bind(id_text(cluster))
            .bind(generation)
            .bind(&key.kmip_uid)
            .bind(&key.kmip_server)
            .bind(&key.kmip_name)
            .bind(micros(key.created))
            .bind(key.rotation_type.as_str())
            .bind(&key.requested_by)
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;

        stmt(q::DELETE_DATA_KEYS)
            .bind(id_text(cluster))
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;
        for dk in &change.data_keys {
            stmt(q::INSERT_DATA_KEY)
                .bind(id_text(dk.id))
                .bind(id_text(dk.cluster_id))
                .bind(hex::encode(&dk.wrapped))
                .bind(&dk.master_key_uid)
                .bind(micros(dk.created))
                .execute(&mut tx)
                .await
                .map_err(|e| classify(&format!("{op}: data key {}", dk.id), e))?;
        }

        update_configs_in(&mut tx, &change.configs).await?;

        let done = stmt(q::COMMIT_INTENT)
            .bind(id_text(change.intent_id))
            .bind(id_text(cluster))
            .bind(IntentPhase::Committed.as_str())
            .bind(new_uid)
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "{op}: no intent {} for the cluster",
                change.intent_id
            )));
        }

        append_audit_in(&mut tx, &change.audit).await?;
        tx.commit().await.map_err(ctx(&op))
    }

    async fn commit_snapshot_once(
        &self,
        commit: &SnapshotCommit,
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let snap = &commit.snapshot;
        let cluster = snap.cluster_id;
        let op = format!("committing snapshot {} of cluster {cluster}", snap.id);

        let chunks =
            SnapshotChunks::check(&op, cluster, snap.id, &commit.uses, &commit.new_chunks)?;
        let sizes = [
            bigint(snap.data_size_bytes, "dataSizeBytes")?,
            bigint(snap.stored_size_bytes, "storageSizeBytes")?,
            bigint(snap.file_size_bytes, "fileSizeBytes")?,
        ];
        let cluster_text = id_text(cluster);
        let snapshot_text = id_text(snap.id);

        let mut tx = self.begin_write(&op, &attempt).await?;
        let in_group = stmt(q::CLUSTER_IN_GROUP)
            .bind(id_text(snap.group_id))
            .bind(&cluster_text)
            .fetch_optional(&mut tx)
            .await
            .map_err(ctx(&op))?;
        if in_group.is_none() {
            return Err(StoreError::NotFound(format!(
                "{op}: no such cluster in group {}",
                snap.group_id
            )));
        }
        stmt(q::INSERT_SNAPSHOT)
            .bind(&snapshot_text)
            .bind(id_text(snap.group_id))
            .bind(&cluster_text)
            .bind(micros(snap.created))
            .bind(snap.kind.as_str())
            .bind(sizes[0])
            .bind(sizes[1])
            .bind(sizes[2])
            .bind(snap.expires.map(micros))
            .bind(snap.do_not_delete)
            .bind(id_text(snap.data_key_id))
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;

        let tx = chunks.insert_new(tx, &self.pool, &op).await?;
        let tx = chunks.insert_references(tx, &self.pool, &op).await?;
        tx.commit().await.map_err(ctx(&op))
    }

    async fn delete_snapshot_once(
        &self,
        cluster: ObjectId,
        id: ObjectId,
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let op = format!("deleting snapshot {id} of cluster {cluster}");
        let mut tx = self.begin_write(&op, &attempt).await?;
        // PostgreSQL: queues with garbage collections of the cluster.
        SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await?;
        let exists = stmt(q::SNAPSHOT)
            .bind(id_text(cluster))
            .bind(id_text(id))
            .fetch_optional(&mut tx)
            .await
            .map_err(ctx(&op))?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("{op}: no such snapshot")));
        }
        stmt(q::DELETE_SNAPSHOT_CHUNKS)
            .bind(id_text(id))
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;
        stmt(q::DELETE_SNAPSHOT)
            .bind(id_text(id))
            .bind(id_text(cluster))
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;
        tx.commit().await.map_err(ctx(&op))
    }

    async fn collect_garbage_once(
        &self,
        cluster: ObjectId,
        attempt: Arc<Attempt>,
    ) -> Result<Vec<ObjectId>, StoreError> {
        let op = format!("collecting garbage of cluster {cluster}");
        let cluster_text = id_text(cluster);
        let mut tx = self.begin_write(&op, &attempt).await?;
        // PostgreSQL: waits for the snapshot commits of the cluster in flight, and holds
        // off new ones until this is done (see queries.rs).
        SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await?;
        let candidates = stmt(q::GARBAGE_PACKS)
            .bind(&cluster_text)
            .fetch_texts(&mut tx)
            .await
            .map_err(ctx(&op))?;
        if candidates.is_empty() {
            tx.rollback().await.map_err(ctx(&op))?;
            return Ok(Vec::new());
        }
        stmt(q::DELETE_GARBAGE)
            .bind(&cluster_text)
            .execute(&mut tx)
            .await
            .map_err(ctx(&op))?;
        let mut emptied = Vec::new();
        for pack in candidates {
            let left = stmt(q::PACK_HAS_CHUNK)
                .bind(&cluster_text)
                .bind(&pack)
                .fetch_optional(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if left.is_none() {
                emptied.push(parse_pack_id(&pack, &op)?);
            }
        }
        tx.commit().await.map_err(ctx(&op))?;
        emptied.sort_unstable();
        Ok(emptied)
    }

    async fn append_audit_once(
        &self,
        event: &AuditEvent,
        attempt: Arc<Attempt>,
    ) -> Result<(), StoreError> {
        let op = format!("appending audit event {}", event.id);
        let mut tx = self.begin_write(&op, &attempt).await?;
        append_audit_in(&mut tx, event).await?;
        tx.commit().await.map_err(ctx(&op))
    }
}

#[async_trait]
impl MetadataStore for SqlStore {
    // ----- groups

    async fn insert_group(&self, group: &Group) -> Result<(), StoreError> {
        stmt(q::INSERT_GROUP)
            .bind(id_text(group.id))
            .bind(&group.name)
            .bind(id_text(group.org_id))
            .bind(micros(group.created))
            .execute(&self.pool)
            .await
            .map_err(|e| {
                classify(
                    &format!("inserting group {} named {:?}", group.id, group.name),
                    e,
                )
            })?;
        Ok(())
    }

    async fn group(&self, id: ObjectId) -> Result<Option<Group>, StoreError> {
        self.find(
            q::GROUP_BY_ID,
            &[id],
            || format!("reading group {id}"),
            rows::group,
        )
        .await
    }

    async fn group_by_name(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let row = stmt(q::GROUP_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading group named {name:?}"), e))?;
        row.as_ref().map(rows::group).transpose()
    }

    async fn list_groups(&self, page: Page) -> Result<(Vec<Group>, u64), StoreError> {
        self.list_page(
            (q::LIST_GROUPS, q::COUNT_GROUPS),
            None,
            page,
            "listing groups",
            rows::group,
        )
        .await
    }

    async fn cluster_count(&self, group: ObjectId) -> Result<u64, StoreError> {
        self.count(
            q::COUNT_TOP_LEVEL_CLUSTERS,
            Some(group),
            &format!("counting clusters of group {group}"),
        )
        .await
    }

    // ----- clusters and backup configs

    async fn insert_clusters(
        &self,
        clusters: &[Cluster],
        configs: &[BackupConfig],
    ) -> Result<(), StoreError> {
        self.retrying("insert_clusters", |attempt| {
            self.insert_clusters_once(clusters, configs, attempt)
        })
        .await
    }

    async fn cluster(&self, group: ObjectId, id: ObjectId) -> Result<Option<Cluster>, StoreError> {
        let what = || format!("reading cluster {id} of group {group}");
        self.find(q::CLUSTER_IN_GROUP, &[group, id], what, rows::cluster)
            .await
    }

    async fn cluster_any_group(&self, id: ObjectId) -> Result<Option<Cluster>, StoreError> {
        self.find(
            q::CLUSTER_BY_ID,
            &[id],
            || format!("reading cluster {id}"),
            rows::cluster,
        )
        .await
    }

    async fn list_clusters(
        &self,
        group: ObjectId,
        parent: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<Cluster>, u64), StoreError> {
        let (limit, offset) = limit_offset(page);
        let op = format!("listing clusters of group {group}");
        let (found, total) = match parent {
            None => {
                let found = stmt(q::LIST_CLUSTERS)
                    .bind(id_text(group))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(ctx(&op))?;
                (
                    found,
                    self.count(q::COUNT_CLUSTERS, Some(group), &op).await?,
                )
            }
            Some(parent) => {
                let found = stmt(q::LIST_CLUSTER_PARTS_PAGE)
                    .bind(id_text(group))
                    .bind(id_text(parent))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(ctx(&op))?;
                let total = stmt(q::COUNT_CLUSTER_PARTS)
                    .bind(id_text(group))
                    .bind(id_text(parent))
                    .fetch_i64(&self.pool)
                    .await
                    .map_err(ctx(&op))?;
                (found, to_u64(total))
            }
        };
        let clusters = found
            .iter()
            .map(rows::cluster)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((clusters, total))
    }

    async fn cluster_parts(&self, parent: ObjectId) -> Result<Vec<Cluster>, StoreError> {
        let found = stmt(q::CLUSTER_PARTS)
            .bind(id_text(parent))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading parts of cluster {parent}"), e))?;
        found.iter().map(rows::cluster).collect()
    }

    async fn delete_cluster(&self, group: ObjectId, id: ObjectId) -> Result<(), StoreError> {
        self.retrying("delete_cluster", |attempt| {
            self.delete_cluster_once(group, id, attempt)
        })
        .await
    }

    async fn backup_config(
        &self,
        group: ObjectId,
        cluster: ObjectId,
    ) -> Result<Option<BackupConfig>, StoreError> {
        let what = || format!("reading backup config of cluster {cluster}");
        self.find(q::CONFIG, &[group, cluster], what, rows::backup_config)
            .await
    }

    async fn list_backup_configs(
        &self,
        group: ObjectId,
        page: Page,
    ) -> Result<(Vec<BackupConfig>, u64), StoreError> {
        let op = format!("listing backup configs of group {group}");
        self.list_page(
            (q::LIST_CONFIGS, q::COUNT_CONFIGS),
            Some(group),
            page,
            &op,
            rows::backup_config,
        )
        .await
    }

    async fn update_backup_configs(
        &self,
        configs: &[BackupConfig],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.retrying("update_backup_configs", |attempt| {
            self.update_backup_configs_once(configs, audit, attempt)
        })
        .await
    }

    // ----- keys

    async fn current_master_key(
        &self,
        cluster: ObjectId,
    ) -> Result<Option<MasterKeyRecord>, StoreError> {
        let what = || format!("reading the current master key of cluster {cluster}");
        self.find(q::CURRENT_KEY, &[cluster], what, rows::master_key)
            .await
    }

    async fn master_keys(&self, cluster: ObjectId) -> Result<Vec<MasterKeyRecord>, StoreError> {
        let found = stmt(q::MASTER_KEYS)
            .bind(id_text(cluster))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading master keys of cluster {cluster}"), e))?;
        found.iter().map(rows::master_key).collect()
    }

    async fn data_keys(&self, cluster: ObjectId) -> Result<Vec<DataKeyRecord>, StoreError> {
        let found = stmt(q::DATA_KEYS)
            .bind(id_text(cluster))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading data keys of cluster {cluster}"), e))?;
        found.iter().map(rows::data_key).collect()
    }

    async fn insert_intent(&self, intent: &KeyIntent) -> Result<(), StoreError> {
        stmt(q::INSERT_INTENT)
            .bind(id_text(intent.id))
            .bind(id_text(intent.cluster_id))
            .bind(&intent.key_name)
            .bind(&intent.previous_uid)
            .bind(&intent.new_uid)
            .bind(intent.phase.as_str())
            .bind(intent.rotation_type.as_str())
            .bind(&intent.requested_by)
            .bind(micros(intent.created))
            .execute(&self.pool)
            .await
            .map_err(|e| {
                classify(
                    &format!(
                        "inserting intent {} for cluster {}",
                        intent.id, intent.cluster_id
                    ),
                    e,
                )
            })?;
        Ok(())
    }

    async fn update_intent(&self, intent: &KeyIntent) -> Result<(), StoreError> {
        let op = format!("updating intent {}", intent.id);
        let done = stmt(q::UPDATE_INTENT)
            .bind(id_text(intent.id))
            .bind(intent.phase.as_str())
            .bind(&intent.new_uid)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such intent")));
        }
        Ok(())
    }

    /// Removes an intent. Removing one that is already gone is not an error, so that
    /// reconciliation can repeat itself after a crash.
    async fn delete_intent(&self, id: ObjectId) -> Result<(), StoreError> {
        stmt(q::DELETE_INTENT)
            .bind(id_text(id))
            .execute(&self.pool)
            .await
            .map_err(|e| classify(&format!("deleting intent {id}"), e))?;
        Ok(())
    }

    async fn intents(&self) -> Result<Vec<KeyIntent>, StoreError> {
        let found = stmt(q::INTENTS)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx("reading intents"))?;
        found.iter().map(rows::intent).collect()
    }

    async fn commit_key_change(&self, change: &KeyChange) -> Result<(), StoreError> {
        self.retrying("commit_key_change", |attempt| {
            self.commit_key_change_once(change, attempt)
        })
        .await
    }

    // ----- snapshots

    async fn chunk_ids(&self, cluster: ObjectId) -> Result<Vec<ChunkId>, StoreError> {
        let op = format!("reading chunk ids of cluster {cluster}");
        let found = stmt(q::CHUNK_IDS)
            .bind(id_text(cluster))
            .fetch_texts(&self.pool)
            .await
            .map_err(ctx(&op))?;
        found
            .iter()
            .map(|text| {
                text.parse().map_err(|_| {
                    StoreError::Backend(format!(
                        "{op}: table chunks holds a chunk id that is not 64 hex digits"
                    ))
                })
            })
            .collect()
    }

    async fn snapshot_chunks(&self, snapshot: ObjectId) -> Result<Vec<ChunkLocation>, StoreError> {
        let op = format!("reading chunk locations of snapshot {snapshot}");
        let found = stmt(q::SNAPSHOT_CHUNKS)
            .bind(id_text(snapshot))
            .fetch_all(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if found.is_empty() {
            // An empty snapshot (an empty stream) has no chunks; a missing one is an error.
            let exists = stmt(q::SNAPSHOT_EXISTS)
                .bind(id_text(snapshot))
                .fetch_optional(&self.pool)
                .await
                .map_err(ctx(&op))?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("{op}: no such snapshot")));
            }
        }
        found.iter().map(rows::chunk_location).collect()
    }

    /// Records a finished backup in one write transaction: the snapshot, its new chunks
    /// (multi-row inserts of 500 rows) and its references (of 1,000 rows).
    ///
    /// Refused before anything is written (`Precondition`): a new chunk of another cluster
    /// or stored by another snapshot, or one the snapshot does not use. Then, rolling
    /// everything back: `NotFound` if the cluster is not in the snapshot's group;
    /// `Conflict` if the snapshot id or a new chunk is already recorded (naming the
    /// chunk); `Precondition` if a used chunk is not stored for the cluster (garbage
    /// collection removed it; naming it). Duplicate ids in `uses` count once.
    async fn commit_snapshot(&self, commit: &SnapshotCommit) -> Result<(), StoreError> {
        self.retrying("commit_snapshot", |attempt| {
            self.commit_snapshot_once(commit, attempt)
        })
        .await
    }

    async fn snapshot(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<SnapshotRecord>, StoreError> {
        let what = || format!("reading snapshot {id} of cluster {cluster}");
        self.find(q::SNAPSHOT, &[cluster, id], what, rows::snapshot)
            .await
    }

    async fn list_snapshots(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<SnapshotRecord>, u64), StoreError> {
        let op = format!("listing snapshots of cluster {cluster}");
        self.list_page(
            (q::LIST_SNAPSHOTS, q::COUNT_SNAPSHOTS),
            Some(cluster),
            page,
            &op,
            rows::snapshot,
        )
        .await
    }

    async fn snapshot_count(&self, cluster: ObjectId) -> Result<u64, StoreError> {
        self.count(
            q::COUNT_SNAPSHOTS,
            Some(cluster),
            &format!("counting snapshots of cluster {cluster}"),
        )
        .await
    }

    /// Writes `expires` and `do_not_delete` of the snapshot with `snapshot.id` in
    /// `snapshot.cluster_id`; `NotFound` if there is none.
    async fn update_snapshot(&self, snapshot: &SnapshotRecord) -> Result<(), StoreError> {
        let op = format!(
            "updating snapshot {} of cluster {}",
            snapshot.id, snapshot.cluster_id
        );
        let done = stmt(q::UPDATE_SNAPSHOT)
            .bind(id_text(snapshot.id))
            .bind(id_text(snapshot.cluster_id))
            .bind(snapshot.expires.map(micros))
            .bind(snapshot.do_not_delete)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such snapshot")));
        }
        Ok(())
    }

    async fn delete_snapshot(&self, cluster: ObjectId, id: ObjectId) -> Result<(), StoreError> {
        self.retrying("delete_snapshot", |attempt| {
            self.delete_snapshot_once(cluster, id, attempt)
        })
        .await
    }

    /// One write transaction: finds the packs that hold unused chunks, deletes the unused
    /// chunks, and returns (sorted) those of the packs that no chunk is left in. A pack
    /// that never held a recorded chunk (a backup that died before its commit) is not
    /// returned: compare [`MetadataStore::packs_in_use`] with a listing for those.
    async fn collect_garbage(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError> {
        self.retrying("collect_garbage", |attempt| {
            self.collect_garbage_once(cluster, attempt)
        })
        .await
    }

    async fn packs_in_use(&self, cluster: ObjectId) -> Result<Vec<ObjectId>, StoreError> {
        let op = format!("reading packs in use by cluster {cluster}");
        let found = stmt(q::PACKS_IN_USE)
            .bind(id_text(cluster))
            .fetch_texts(&self.pool)
            .await
            .map_err(ctx(&op))?;
        found.iter().map(|p| parse_pack_id(p, &op)).collect()
    }

    // ----- restore jobs

    /// Records a restore job; `NotFound` unless its snapshot exists in its cluster and
    /// group, `Conflict` if the id is taken.
    async fn insert_restore_job(&self, job: &RestoreJob) -> Result<(), StoreError> {
        let op = format!(
            "inserting restore job {} of snapshot {} in cluster {}",
            job.id, job.snapshot_id, job.cluster_id
        );
        let done = stmt(q::INSERT_RESTORE_JOB)
            .bind(id_text(job.id))
            .bind(id_text(job.group_id))
            .bind(id_text(job.cluster_id))
            .bind(id_text(job.snapshot_id))
            .bind(micros(job.created))
            .bind(micros(job.expires))
            .bind(hex::encode(&job.token_sha256))
            .bind(i64::from(job.max_downloads))
            .bind(i64::from(job.downloads))
            .bind(&job.requested_by)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "{op}: no such snapshot in the cluster and group {}",
                job.group_id
            )));
        }
        Ok(())
    }

    async fn restore_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<RestoreJob>, StoreError> {
        let what = || format!("reading restore job {id} of cluster {cluster}");
        self.find(q::RESTORE_JOB, &[cluster, id], what, rows::restore_job)
            .await
    }

    async fn list_restore_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<RestoreJob>, u64), StoreError> {
        let op = format!("listing restore jobs of cluster {cluster}");
        let queries = (q::LIST_RESTORE_JOBS, q::COUNT_RESTORE_JOBS);
        self.list_page(queries, Some(cluster), page, &op, rows::restore_job)
            .await
    }

    async fn take_restore_download(&self, id: ObjectId) -> Result<Option<RestoreJob>, StoreError> {
        let what = || format!("counting a download of restore job {id}");
        self.find(q::TAKE_RESTORE_DOWNLOAD, &[id], what, rows::restore_job)
            .await
    }

    // ----- re-encryption jobs (see reencryption.rs)

    async fn insert_reencryption_job(
        &self,
        job: &ReencryptionJob,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.retrying("insert_reencryption_job", |attempt| {
            self.insert_reencryption_job_once(job, audit, attempt)
        })
        .await
    }

    async fn reencryption_job(
        &self,
        cluster: ObjectId,
        id: ObjectId,
    ) -> Result<Option<ReencryptionJob>, StoreError> {
        self.reencryption_job_impl(cluster, id).await
    }

    async fn list_reencryption_jobs(
        &self,
        cluster: ObjectId,
        page: Page,
    ) -> Result<(Vec<ReencryptionJob>, u64), StoreError> {
        self.list_reencryption_jobs_impl(cluster, page).await
    }

    async fn running_reencryption_jobs(&self) -> Result<Vec<ReencryptionJob>, StoreError> {
        self.running_reencryption_jobs_impl().await
    }

    async fn commit_reencrypted_snapshot(
        &self,
        commit: &ReencryptCommit,
    ) -> Result<(), StoreError> {
        self.retrying("commit_reencrypted_snapshot", |attempt| {
            self.commit_reencrypted_snapshot_once(commit, attempt)
        })
        .await
    }

    async fn finish_reencryption_job(&self, finish: &ReencryptFinish) -> Result<(), StoreError> {
        self.retrying("finish_reencryption_job", |attempt| {
            self.finish_reencryption_job_once(finish, attempt)
        })
        .await
    }

    // ----- users

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let md5 = secret_hex(&user.ha1_md5);
        let sha256 = secret_hex(&user.ha1_sha256);
        stmt(q::INSERT_USER)
            .bind(id_text(user.id))
            .bind(&user.username)
            .bind(md5.as_str())
            .bind(sha256.as_str())
            .bind(roles_json(&user.roles))
            .bind(json_list(&user.access_list))
            .bind(micros(user.created))
            .execute(&self.pool)
            .await
            .map_err(|e| classify(&format!("inserting user {:?}", user.username), e))?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = stmt(q::USER_BY_NAME)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| classify(&format!("reading user {username:?}"), e))?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let found = stmt(q::LIST_USERS)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx("listing users"))?;
        found.iter().map(rows::user).collect()
    }

    /// Replaces the secrets, roles and access list of the user with `user.username`
    /// (the id and creation time stay as first stored).
    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let op = format!("updating user {:?}", user.username);
        let md5 = secret_hex(&user.ha1_md5);
        let sha256 = secret_hex(&user.ha1_sha256);
        let done = stmt(q::UPDATE_USER)
            .bind(&user.username)
            .bind(md5.as_str())
            .bind(sha256.as_str())
            .bind(roles_json(&user.roles))
            .bind(json_list(&user.access_list))
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such user")));
        }
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        let op = format!("deleting user {username:?}");
        let done = stmt(q::DELETE_USER)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("{op}: no such user")));
        }
        Ok(())
    }

    // ----- audit

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.retrying("append_audit", |attempt| {
            self.append_audit_once(event, attempt)
        })
        .await
    }

    async fn list_audit(
        &self,
        group: Option<ObjectId>,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError> {
        let (limit, offset) = limit_offset(page);
        let op = "listing audit events";
        let found = match group {
            None => {
                stmt(q::LIST_AUDIT)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(g) => {
                stmt(q::LIST_AUDIT_GROUP)
                    .bind(id_text(g))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(ctx(op))?;
        let events = found
            .iter()
            .map(|r| rows::audit(r).map(|a| a.event))
            .collect::<Result<Vec<_>, _>>()?;
        let total = match group {
            None => self.count(q::COUNT_AUDIT, None, op).await?,
            Some(g) => self.count(q::COUNT_AUDIT_GROUP, Some(g), op).await?,
        };
        Ok((events, total))
    }

    async fn audit_event(
        &self,
        group: ObjectId,
        id: ObjectId,
    ) -> Result<Option<AuditEvent>, StoreError> {
        let what = || "reading an audit event".to_string();
        self.find(q::GET_AUDIT_EVENT, &[group, id], what, |r| {
            rows::audit(r).map(|a| a.event)
        })
        .await
    }

    async fn verify_audit_chain(&self) -> Result<u64, StoreError> {
        let op = "verifying the audit chain";
        // One read transaction: a consistent snapshot of the chain and its head while
        // appends carry on (SQLite: WAL; PostgreSQL: REPEATABLE READ).
        let mut tx = self
            .pool
            .begin(q::BEGIN_SNAPSHOT, None)
            .await
            .map_err(ctx(op))?;
        let head = stmt(q::AUDIT_HEAD)
            .fetch_one(&mut tx)
            .await
            .map_err(ctx(op))?;
        let head_seq: i64 = head.try_get("seq").map_err(ctx(op))?;
        let head_hash: String = head.try_get("hash").map_err(ctx(op))?;

        let mut running = audit::GENESIS;
        let mut last_seq = 0i64;
        let mut last_id: Option<ObjectId> = None;
        loop {
            let batch = stmt(q::AUDIT_CHAIN_BATCH)
                .bind(last_seq)
                .bind(VERIFY_BATCH)
                .fetch_all(&mut tx)
                .await
                .map_err(ctx(op))?;
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                let row = rows::audit(row)?;
                let id = row.event.id;
                // A gap in the sequence means events before this one were removed.
                if last_seq.checked_add(1) != Some(row.seq) {
                    return Err(StoreError::AuditChainBroken(format!(
                        "{id} (sequence {} follows {last_seq})",
                        row.seq
                    )));
                }
                if audit::parse_hash(&row.prev_hash) != Some(running) {
                    return Err(StoreError::AuditChainBroken(format!(
                        "{id} (sequence {}: does not follow the event before it)",
                        row.seq
                    )));
                }
                let computed = audit::chain_hash(&running, row.seq, &row.event);
                if audit::parse_hash(&row.hash) != Some(computed) {
                    return Err(StoreError::AuditChainBroken(format!(
                        "{id} (sequence {}: contents do not match its hash)",
                        row.seq
                    )));
                }
                running = computed;
                last_seq = row.seq;
                last_id = Some(id);
            }
        }
        if head_seq != last_seq || audit::parse_hash(&head_hash) != Some(running) {
            let last = last_id.map_or_else(|| "(none)".to_owned(), |id| id.to_string());
            return Err(StoreError::AuditChainBroken(format!(
                "{last} (the chain ends at sequence {last_seq} but its head records {head_seq}: events are missing \
                 from the end)"
            )));
        }
        tx.rollback().await.map_err(ctx(op))?;
        Ok(to_u64(last_seq))
    }

    // ----- several nodes on one database

    async fn ping(&self) -> Result<(), StoreError> {
        stmt(q::PING)
            .execute(&self.pool)
            .await
            .map_err(ctx("pinging the database"))?;
        Ok(())
    }

    /// One `INSERT ... ON CONFLICT DO UPDATE ... WHERE` ([`q::ACQUIRE_LEASE`]): it
    /// changes a row exactly when the lease is free, expired or already `holder`'s.
    /// Names and holders are 1 to 512 bytes (`Precondition` otherwise); the expiry
    /// saturates at the largest time a row holds.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let op = format!("acquiring lease {name:?} for {holder:?}");
        check_name("lease name", name, &op)?;
        check_name("lease holder", holder, &op)?;
        let now_us = micros(now);
        let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let changed = stmt(q::ACQUIRE_LEASE)
            .bind(name)
            .bind(holder)
            .bind(now_us.saturating_add(ttl_us))
            .bind(now_us)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        Ok(changed == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let op = format!("releasing lease {name:?} of {holder:?}");
        check_name("lease name", name, &op)?;
        check_name("lease holder", holder, &op)?;
        stmt(q::RELEASE_LEASE)
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        Ok(())
    }

    /// Sorted by name (bytewise, whatever the database's collation). An empty prefix
    /// lists every live lease; a prefix is at most 512 bytes.
    async fn live_leases(
        &self,
        prefix: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Lease>, StoreError> {
        let op = format!("listing leases named {prefix:?}...");
        if prefix.len() > MAX_NAME {
            return Err(StoreError::Precondition(format!(
                "{op}: a prefix is at most {MAX_NAME} bytes"
            )));
        }
        let found = stmt(q::LIVE_LEASES)
            .bind(prefix)
            .bind(micros(now))
            .fetch_all(&self.pool)
            .await
            .map_err(ctx(&op))?;
        let mut leases = found
            .iter()
            .map(rows::lease)
            .collect::<Result<Vec<_>, _>>()?;
        leases.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(leases)
    }

    /// Two statements, each atomic: `INSERT ... ON CONFLICT DO NOTHING`, then a read of
    /// the row (on PostgreSQL a second writer's insert waits for the first to commit,
    /// then does nothing, so the read finds the first value). The candidate is 1 to
    /// 4,096 bytes (`Precondition` otherwise); the value is never quoted in an error.
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let op = format!("reading shared secret {name:?}");
        check_name("shared secret name", name, &op)?;
        if candidate.is_empty() || candidate.len() > MAX_SECRET {
            return Err(StoreError::Precondition(format!(
                "{op}: a shared secret is 1 to {MAX_SECRET} bytes, not {}",
                candidate.len()
            )));
        }
        let candidate_hex = secret_hex(candidate);
        stmt(q::INSERT_SHARED_SECRET)
            .bind(name)
            .bind(candidate_hex.as_str())
            .bind(micros(OffsetDateTime::now_utc()))
            .execute(&self.pool)
            .await
            .map_err(ctx(&op))?;
        let row = stmt(q::SHARED_SECRET)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(ctx(&op))?;
        let stored = Zeroizing::new(row.try_get::<String>("value_hex").map_err(ctx(&op))?);
        hex::decode(stored.as_bytes()).map_err(|_| {
            StoreError::Backend(format!(
                "{op}: column value_hex of table shared_secrets is not hexadecimal"
            ))
        })
    }

    // ----- key lifecycle: statements and transactions in `lifecycle.rs`

    async fn key_lifecycle(
        &self,
        cluster: ObjectId,
    ) -> Result<headlock_core::model::KeyLifecycleSettings, StoreError> {
        self.key_lifecycle_of(cluster).await
    }

    async fn set_key_lifecycles(
        &self,
        settings: &[(ObjectId, headlock_core::model::KeyLifecycleSettings)],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.retrying("set_key_lifecycles", |attempt| {
            self.set_key_lifecycles_once(settings, audit, attempt)
        })
        .await
    }

    async fn encrypted_clusters(
        &self,
    ) -> Result<Vec<(Cluster, headlock_core::model::KeyLifecycleSettings)>, StoreError> {
        self.encrypted_clusters_all().await
    }

    async fn set_key_state_error(
        &self,
        error: &headlock_core::model::KeyStateError,
    ) -> Result<bool, StoreError> {
        self.set_key_state_error_row(error).await
    }

    async fn clear_key_state_error(&self, cluster: ObjectId) -> Result<bool, StoreError> {
        self.clear_key_state_error_row(cluster).await
    }

    async fn key_state_error(
        &self,
        cluster: ObjectId,
    ) -> Result<Option<headlock_core::model::KeyStateError>, StoreError> {
        self.key_state_error_row(cluster).await
    }

    async fn retired_key_fates(
        &self,
        cluster: ObjectId,
    ) -> Result<Vec<headlock_core::model::RetiredKeyRecord>, StoreError> {
        self.retired_key_fates_of(cluster).await
    }

    async fn claim_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &str,
        now: OffsetDateTime,
    ) -> Result<headlock_core::model::DestructionClaim, StoreError> {
        self.retrying("claim_key_destruction", |attempt| {
            self.claim_key_destruction_once(cluster, uid, now, attempt)
        })
        .await
    }

    async fn finish_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        self.finish_key_destruction_row(cluster, uid, at).await
    }

    async fn keep_retired_key(
        &self,
        cluster: ObjectId,
        uid: &str,
        now: OffsetDateTime,
    ) -> Result<headlock_core::model::RetiredKeyFate, StoreError> {
        self.retrying("keep_retired_key", |attempt| {
            self.keep_retired_key_once(cluster, uid, now, attempt)
        })
        .await
    }
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
