//! The embedded server's persistent store of managed objects: one SQLite file in the
//! data directory (created with mode 0600 before SQLite opens it, so the key material
//! is never readable by others; SQLite gives its `-wal` and `-shm` files the same
//! mode), in WAL mode with `synchronous = FULL` and `secure_delete = ON`: a key whose Unique Identifier was
//! returned to a client is on disk, because the client may wrap data under it at once.
//!
//! Tables: `objects` (one row per managed object: type, algorithm, length, usage mask,
//! key material, state, the six lifecycle dates, revocation reason, owner), `names` and
//! `links` (the multi-valued attributes), `object_meta` (Fresh and Original Creation
//! Date, for objects stored since they were added; an older object has no row and so
//! neither attribute), `key_formats` (the Key Format Type a key was registered in, for
//! one not registered Raw) and `custom_attributes` (a client's `x-` and vendor
//! attributes, each value as TTLV bytes).
//!
//! Writes go through one connection of their own, one operation at a time
//! ([`KeyStore::write`] hands out a [`Write`]), so a read-check-write sequence (a state
//! transition) is atomic without SQLite busy-retry loops. They are committed in groups:
//! each operation's writes are staged in the writer's open transaction under a
//! savepoint, and [`Write::commit`] returns once a COMMIT that includes them has
//! returned, with `synchronous = FULL` one fsync of the WAL per group rather than per
//! operation. While one COMMIT runs, the operations that arrive stage their writes
//! behind it, and the first of them to ask for its commit commits them all (the group
//! commit of database engines). Nothing is answered before it is on disk: an
//! operation's answer waits for its group's COMMIT, and readers (on the pool's other
//! connections) see only committed, and therefore durable, state. When a group's
//! COMMIT fails, every operation in it fails, and none of their writes remain.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::sqlite::{SqliteRow, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};
use zeroize::Zeroizing;

use crate::error::Error;
use kmip::ttlv::{self, Item, Limits};
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, KeyFormatType, LinkType, ObjectType,
    RevocationReasonCode, State,
};

/// File name of the key store inside the data directory given to [`KeyStore::open_in`].
pub const FILE_NAME: &str = "kmip-objects.sqlite";

/// One managed object with the attributes the embedded server keeps (KMIP 1.4 section
/// 3: the attributes it supports).
#[derive(Clone)]
pub struct StoredObject {
    /// Unique Identifier (a random UUID).
    pub uid: String,
    /// Object Type (Symmetric Key or Secret Data).
    pub object_type: ObjectType,
    /// Cryptographic Algorithm.
    pub algorithm: Option<CryptographicAlgorithm>,
    /// Cryptographic Length in bits.
    pub length: Option<i32>,
    /// Cryptographic Usage Mask.
    pub usage_mask: Option<CryptographicUsageMask>,
    /// Raw key material; `None` once the object is destroyed.
    pub key_material: Option<Zeroizing<Vec<u8>>>,
    /// Name attribute values (Uninterpreted Text String).
    pub names: Vec<String>,
    /// Lifecycle state (KMIP 1.4 section 3.22).
    pub state: State,
    /// Initial Date (seconds since the epoch), when the object was created.
    pub initial_date: i64,
    /// Activation Date.
    pub activation_date: Option<i64>,
    /// Deactivation Date.
    pub deactivation_date: Option<i64>,
    /// Destroy Date.
    pub destroy_date: Option<i64>,
    /// Compromise Date (when the server learned of the compromise).
    pub compromise_date: Option<i64>,
    /// Compromise Occurrence Date (as the client stated it).
    pub compromise_occurrence_date: Option<i64>,
    /// Last Change Date.
    pub last_change_date: i64,
    /// Revocation Reason code, if revoked.
    pub revocation_reason: Option<RevocationReasonCode>,
    /// Revocation Message, if revoked with one.
    pub revocation_message: Option<String>,
    /// Link attributes: (type, linked object's Unique Identifier).
    pub links: Vec<(LinkType, String)>,
    /// Common Name of the client certificate that created the object.
    pub owner: String,
    /// Fresh (KMIP 1.4 section 3.34): not yet served to a client by a Get; `None` for
    /// an object stored before the server kept it.
    pub fresh: Option<bool>,
    /// Original Creation Date, for keys the server generated (Create, Re-key); a
    /// registered key's is unknown.
    pub original_creation_date: Option<i64>,
    /// Custom attributes: (name, the `AttributeValue` item), one instance per name.
    pub custom: Vec<(String, Item)>,
    /// The Key Format Type the key was registered in (Raw or Transparent Symmetric
    /// Key), which Get returns when the client asks for none; Raw for generated keys.
    pub key_format: KeyFormatType,
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("StoredObject")
            .field("uid", &self.uid)
            .field("object_type", &self.object_type)
            .field("algorithm", &self.algorithm)
            .field("length", &self.length)
            .field("state", &self.state)
            .field("names", &self.names)
            .field("owner", &self.owner)
            .field("has_key_material", &self.key_material.is_some())
            .finish_non_exhaustive()
    }
}

/// What a Locate asks for; `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct LocateFilter {
    /// Objects having this Name.
    pub name: Option<String>,
    /// Objects of this type.
    pub object_type: Option<ObjectType>,
    /// Objects in this state; `None`: in any state but Destroyed and Destroyed
    /// Compromised.
    pub state: Option<State>,
    /// Objects with this algorithm.
    pub algorithm: Option<CryptographicAlgorithm>,
    /// Objects with this Cryptographic Length.
    pub length: Option<i32>,
    /// At most this many identifiers.
    pub max_items: Option<usize>,
    /// Skip this many matches first (KMIP 1.3 Offset Items).
    pub offset: Option<usize>,
}

/// Handle on the SQLite store; cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    /// Readers: they see committed state only.
    pool: SqlitePool,
    path: PathBuf,
    writes: Arc<Writes>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The write side: the writer connection, and the lock that makes one operation at a
/// time the group's leader (the one that runs COMMIT).
struct Writes {
    writer: Arc<Mutex<Writer>>,
    leader: Mutex<()>,
}

/// The connection all writes go through, and what is open on it.
struct Writer {
    /// `None` once the store is closed.
    conn: Option<SqliteConnection>,
    /// A transaction is open (BEGIN IMMEDIATE issued, COMMIT not yet).
    in_transaction: bool,
    /// The savepoint of an operation that ended without [`Write::commit`] (it failed
    /// half-way) is still open: roll it back before anything else.
    unfinished_op: bool,
    /// The group the writes staged now belong to.
    group: Arc<Group>,
}

/// One group of operations committed together; the outcome is set once, by the leader
/// that ran its COMMIT.
#[derive(Default)]
struct Group {
    outcome: OnceLock<Result<(), String>>,
}

/// Name of the savepoint around one operation's writes.
const OP_SAVEPOINT: &str = "op";

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS objects (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        uid TEXT NOT NULL UNIQUE,
        object_type INTEGER NOT NULL,
        algorithm INTEGER,
        length INTEGER,
        usage_mask INTEGER,
        key_material BLOB,
        state INTEGER NOT NULL,
        initial_date INTEGER NOT NULL,
        activation_date INTEGER,
        deactivation_date INTEGER,
        destroy_date INTEGER,
        compromise_date INTEGER,
        compromise_occurrence_date INTEGER,
        last_change_date INTEGER NOT NULL,
        revocation_reason INTEGER,
        revocation_message TEXT,
        owner TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS objects_owner ON objects(owner, seq)",
    "CREATE TABLE IF NOT EXISTS names (
        uid TEXT NOT NULL REFERENCES objects(uid),
        name TEXT NOT NULL,
        PRIMARY KEY (uid, name)
    )",
    "CREATE INDEX IF NOT EXISTS names_name ON names(name)",
    "CREATE TABLE IF NOT EXISTS links (
        uid TEXT NOT NULL REFERENCES objects(uid),
        link_type INTEGER NOT NULL,
        linked_uid TEXT NOT NULL,
        PRIMARY KEY (uid, link_type, linked_uid)
    )",
    "CREATE TABLE IF NOT EXISTS object_meta (
        uid TEXT PRIMARY KEY REFERENCES objects(uid),
        fresh INTEGER NOT NULL,
        original_creation_date INTEGER
    )",
    "CREATE TABLE IF NOT EXISTS key_formats (
        uid TEXT PRIMARY KEY REFERENCES objects(uid),
        key_format_type INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS custom_attributes (
        uid TEXT NOT NULL REFERENCES objects(uid),
        name TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (uid, name)
    )",
];

/// Largest custom attribute value kept, encoded (the whole `AttributeValue` item).
pub const MAX_CUSTOM_VALUE_BYTES: usize = 1024;

fn store_err(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let context = context.into();
    move |source| Error::Store { context, source }
}

impl KeyStore {
    /// Opens (creating if needed) the store [`FILE_NAME`] inside `data_dir`.
    pub async fn open_in(data_dir: &Path) -> Result<KeyStore, Error> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))?;
        Self::open(&data_dir.join(FILE_NAME)).await
    }

    /// Opens (creating with mode 0600 if needed) the SQLite store at `path`.
    pub async fn open(path: &Path) -> Result<KeyStore, Error> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Destroyed key material is overwritten with zeros in the file, not just
            // unlinked from the b-tree.
            .pragma("secure_delete", "ON");
        let mut writer = SqliteConnection::connect_with(&options)
            .await
            .map_err(store_err(format!("opening {}", path.display())))?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut writer)
                .await
                .map_err(store_err("creating the schema"))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(store_err(format!("opening {}", path.display())))?;
        Ok(KeyStore {
            pool,
            path: path.to_path_buf(),
            writes: Arc::new(Writes {
                writer: Arc::new(Mutex::new(Writer {
                    conn: Some(writer),
                    in_transaction: false,
                    unfinished_op: false,
                    group: Arc::default(),
                })),
                leader: Mutex::new(()),
            }),
        })
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begins one operation's writes: waits for the writer (the operation before it
    /// may still be staging), then reads through the returned [`Write`] see every
    /// write staged before. Drop it without [`Write::commit`] and its writes are
    /// rolled back.
    pub async fn write(&self) -> Result<Write, Error> {
        let mut writer = Arc::clone(&self.writes.writer).lock_owned().await;
        writer.discard_unfinished_op().await?;
        Ok(Write {
            writes: Arc::clone(&self.writes),
            writer,
            ended: None,
        })
    }

    /// The object `uid` if it exists and belongs to `owner`, as last committed.
    pub async fn get(&self, uid: &str, owner: &str) -> Result<Option<StoredObject>, Error> {
        let context = format!("reading object {uid}");
        // One read transaction: the object and its names and links from one commit.
        let mut tx = self.pool.begin().await.map_err(store_err(&context))?;
        let obj = read_object(&mut tx, uid, owner).await;
        // A read-only transaction: ending it cannot lose anything.
        let _ = tx.rollback().await;
        obj.map_err(store_err(&context))
    }

    /// Unique Identifiers of `owner`'s objects matching `filter`, most recently created
    /// first, as last committed.
    pub async fn locate(&self, owner: &str, filter: &LocateFilter) -> Result<Vec<String>, Error> {
        locate_on(&self.pool, owner, filter).await
    }

    /// Closes the writer and the connection pool (checkpointing the WAL). Writes
    /// staged and not committed (an operation that failed half-way) are rolled back.
    pub async fn close(&self) {
        let conn = self.writes.writer.lock().await.conn.take();
        if let Some(conn) = conn {
            // Closing a connection rolls back its open transaction.
            let _ = conn.close().await;
        }
        self.pool.close().await;
    }
}

/// One operation's writes (from [`KeyStore::write`]): reads and writes through the
/// writer connection, inside the open group transaction.
pub struct Write {
    writes: Arc<Writes>,
    writer: OwnedMutexGuard<Writer>,
    /// The group of the writes of operations ended with [`Write::end_operation`].
    ended: Option<Arc<Group>>,
}

impl Write {
    /// The object `uid` if it exists and belongs to `owner`, with every write staged
    /// so far.
    pub async fn get(&mut self, uid: &str, owner: &str) -> Result<Option<StoredObject>, Error> {
        let context = format!("reading object {uid}");
        let conn = self.writer.conn()?;
        read_object(conn, uid, owner)
            .await
            .map_err(store_err(&context))
    }

    /// [`KeyStore::locate`] with every write staged so far.
    pub async fn locate(
        &mut self,
        owner: &str,
        filter: &LocateFilter,
    ) -> Result<Vec<String>, Error> {
        let conn = self.writer.conn()?;
        locate_on(&mut *conn, owner, filter).await
    }

    /// Stages a new object (with its names and links).
    pub async fn insert(&mut self, obj: &StoredObject) -> Result<(), Error> {
        let context = format!("inserting object {}", obj.uid);
        let conn = self.writer.begin_op().await?;
        sqlx::query(
            "INSERT INTO objects (uid, object_type, algorithm, length, usage_mask, key_material,
                state, initial_date, activation_date, deactivation_date, destroy_date,
                compromise_date, compromise_occurrence_date, last_change_date,
                revocation_reason, revocation_message, owner)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&obj.uid)
        .bind(i64::from(obj.object_type.0))
        .bind(obj.algorithm.map(|a| i64::from(a.0)))
        .bind(obj.length)
        .bind(obj.usage_mask.map(|m| i64::from(m.0)))
        .bind(obj.key_material.as_ref().map(|k| k.as_slice()))
        .bind(i64::from(obj.state.0))
        .bind(obj.initial_date)
        .bind(obj.activation_date)
        .bind(obj.deactivation_date)
        .bind(obj.destroy_date)
        .bind(obj.compromise_date)
        .bind(obj.compromise_occurrence_date)
        .bind(obj.last_change_date)
        .bind(obj.revocation_reason.map(|r| i64::from(r.0)))
        .bind(obj.revocation_message.as_deref())
        .bind(&obj.owner)
        .execute(&mut *conn)
        .await
        .map_err(store_err(&context))?;
        write_multi(conn, obj, &context).await
    }

    /// Stages new values of an existing object's mutable fields (state, dates,
    /// revocation, key material, names, links, custom attributes, Fresh), read through
    /// this [`Write`].
    pub async fn update(&mut self, obj: &StoredObject) -> Result<(), Error> {
        let context = format!("updating object {}", obj.uid);
        self.update_row(obj).await?;
        let conn = self.writer.begin_op().await?;
        for table in ["names", "links", "custom_attributes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE uid = ?"))
                .bind(&obj.uid)
                .execute(&mut *conn)
                .await
                .map_err(store_err(&context))?;
        }
        write_multi(conn, obj, &context).await
    }

    /// Stages new values of the object's own row only: state, dates, revocation, key
    /// material and usage mask (a lifecycle change); its names, links, custom
    /// attributes and Fresh stay as stored. One statement where [`Write::update`]
    /// takes several.
    pub async fn update_row(&mut self, obj: &StoredObject) -> Result<(), Error> {
        let context = format!("updating object {}", obj.uid);
        let conn = self.writer.begin_op().await?;
        sqlx::query(
            "UPDATE objects SET key_material = ?, state = ?, activation_date = ?,
                deactivation_date = ?, destroy_date = ?, compromise_date = ?,
                compromise_occurrence_date = ?, last_change_date = ?, revocation_reason = ?,
                revocation_message = ?, usage_mask = ?
             WHERE uid = ?",
        )
        .bind(obj.key_material.as_ref().map(|k| k.as_slice()))
        .bind(i64::from(obj.state.0))
        .bind(obj.activation_date)
        .bind(obj.deactivation_date)
        .bind(obj.destroy_date)
        .bind(obj.compromise_date)
        .bind(obj.compromise_occurrence_date)
        .bind(obj.last_change_date)
        .bind(obj.revocation_reason.map(|r| i64::from(r.0)))
        .bind(obj.revocation_message.as_deref())
        .bind(obj.usage_mask.map(|m| i64::from(m.0)))
        .bind(&obj.uid)
        .execute(&mut *conn)
        .await
        .map_err(store_err(&context))?;
        Ok(())
    }

    /// Stages Fresh = False for `uid` (KMIP 1.4 section 3.34: the object was served),
    /// if it is still True; an object without a Fresh record is left without one.
    pub async fn mark_served(&mut self, uid: &str) -> Result<(), Error> {
        let conn = self.writer.begin_op().await?;
        sqlx::query("UPDATE object_meta SET fresh = 0 WHERE uid = ? AND fresh = 1")
            .bind(uid)
            .execute(&mut *conn)
            .await
            .map_err(store_err(format!("marking object {uid} served")))?;
        Ok(())
    }

    /// Makes this operation's writes durable: returns once a COMMIT that includes them
    /// has returned (with `synchronous = FULL`, after the fsync), or the error that
    /// COMMIT gave. An operation that wrote nothing returns at once.
    pub async fn commit(mut self) -> Result<(), Error> {
        let ended = self.end_op().await?;
        let Write {
            writes,
            writer,
            ended: before,
        } = self;
        let Some(group) = ended.or(before) else {
            return Ok(());
        };
        drop(writer);
        writes.finish(&group).await
    }

    /// Ends one operation of several that share this `Write` (a batch): its writes are
    /// kept, and made durable with the others' by [`Write::commit`].
    pub async fn end_operation(&mut self) -> Result<(), Error> {
        if let Some(group) = self.end_op().await? {
            self.ended = Some(group);
        }
        Ok(())
    }

    /// Undoes the writes of the operation under way (one that failed), keeping those of
    /// operations ended before it.
    pub async fn discard_operation(&mut self) -> Result<(), Error> {
        self.writer.discard_unfinished_op().await
    }

    /// Releases this operation's savepoint (its writes now belong to the group); the
    /// group to wait for, or `None` if the operation wrote nothing.
    async fn end_op(&mut self) -> Result<Option<Arc<Group>>, Error> {
        if !self.writer.unfinished_op {
            return Ok(None);
        }
        let conn = self.writer.conn()?;
        sqlx::query(&format!("RELEASE {OP_SAVEPOINT}"))
            .execute(conn)
            .await
            .map_err(store_err("ending an operation's writes"))?;
        self.writer.unfinished_op = false;
        Ok(Some(Arc::clone(&self.writer.group)))
    }
}

impl Writes {
    /// Waits until `group` is committed, committing it (and every write staged in it
    /// since) if no one else is.
    async fn finish(&self, group: &Group) -> Result<(), Error> {
        loop {
            if let Some(outcome) = group.outcome.get() {
                return outcome.clone().map_err(|reason| Error::Commit { reason });
            }
            let _leader = self.leader.lock().await;
            if group.outcome.get().is_some() {
                continue;
            }
            // Groups commit in order, one leader at a time: the open one is ours. The
            // writer lock queues behind the operations staging now, which join it.
            let mut writer = self.writer.lock().await;
            let committing = std::mem::take(&mut writer.group);
            let outcome = writer.commit_group().await;
            drop(writer);
            let _ = committing.outcome.set(outcome);
        }
    }
}

impl Writer {
    fn conn(&mut self) -> Result<&mut SqliteConnection, Error> {
        self.conn.as_mut().ok_or_else(|| Error::Commit {
            reason: "the key store is closed".into(),
        })
    }

    /// Opens the group transaction and this operation's savepoint if they are not open
    /// yet; the connection to write through.
    async fn begin_op(&mut self) -> Result<&mut SqliteConnection, Error> {
        if !self.in_transaction {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(self.conn()?)
                .await
                .map_err(store_err("beginning a write transaction"))?;
            // Recorded at once: should the savepoint fail, the transaction is open.
            self.in_transaction = true;
        }
        if !self.unfinished_op {
            sqlx::query(&format!("SAVEPOINT {OP_SAVEPOINT}"))
                .execute(self.conn()?)
                .await
                .map_err(store_err("beginning an operation's writes"))?;
            self.unfinished_op = true;
        }
        self.conn()
    }

    /// Rolls back the writes of an operation that ended without committing them.
    async fn discard_unfinished_op(&mut self) -> Result<(), Error> {
        if !self.unfinished_op {
            return Ok(());
        }
        let conn = self.conn()?;
        for statement in [
            format!("ROLLBACK TO {OP_SAVEPOINT}"),
            format!("RELEASE {OP_SAVEPOINT}"),
        ] {
            sqlx::query(&statement)
                .execute(&mut *conn)
                .await
                .map_err(store_err("rolling back a failed operation's writes"))?;
        }
        self.unfinished_op = false;
        Ok(())
    }

    /// COMMITs the open transaction (if any). On failure the transaction is rolled
    /// back, so that none of the group's writes remain.
    async fn commit_group(&mut self) -> Result<(), String> {
        self.discard_unfinished_op()
            .await
            .map_err(|e| e.to_string())?;
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        let conn = self.conn().map_err(|e| e.to_string())?;
        match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // SQLite may have rolled back already; if not, do it now. If that fails
                // too, the connection is unusable and later writes fail.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e.to_string())
            }
        }
    }
}

/// [`KeyStore::locate`] and [`Write::locate`], on the connection or pool given.
async fn locate_on<'e, E>(
    executor: E,
    owner: &str,
    filter: &LocateFilter,
) -> Result<Vec<String>, Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let mut sql = String::from("SELECT o.uid FROM objects o WHERE o.owner = ?");
    if filter.name.is_some() {
        sql.push_str(" AND EXISTS (SELECT 1 FROM names n WHERE n.uid = o.uid AND n.name = ?)");
    }
    if filter.object_type.is_some() {
        sql.push_str(" AND o.object_type = ?");
    }
    if filter.state.is_some() {
        sql.push_str(" AND o.state = ?");
    } else {
        // Destroyed objects are found only by asking for their state (the OASIS
        // profiles' Locate after Destroy finds nothing).
        sql.push_str(&format!(
            " AND o.state NOT IN ({}, {})",
            State::DESTROYED.0,
            State::DESTROYED_COMPROMISED.0
        ));
    }
    if filter.algorithm.is_some() {
        sql.push_str(" AND o.algorithm = ?");
    }
    if filter.length.is_some() {
        sql.push_str(" AND o.length = ?");
    }
    sql.push_str(" ORDER BY o.seq DESC LIMIT ? OFFSET ?");
    let mut query = sqlx::query_scalar::<_, String>(&sql).bind(owner);
    if let Some(name) = &filter.name {
        query = query.bind(name);
    }
    if let Some(t) = filter.object_type {
        query = query.bind(i64::from(t.0));
    }
    if let Some(s) = filter.state {
        query = query.bind(i64::from(s.0));
    }
    if let Some(a) = filter.algorithm {
        query = query.bind(i64::from(a.0));
    }
    if let Some(l) = filter.length {
        query = query.bind(l);
    }
    let limit = filter
        .max_items
        .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
    let offset = filter
        .offset
        .map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX));
    query
        .bind(limit)
        .bind(offset)
        .fetch_all(executor)
        .await
        .map_err(store_err("locating objects"))
}

/// The object `uid` of `owner`, with its names and links, read through `conn`.
async fn read_object(
    conn: &mut SqliteConnection,
    uid: &str,
    owner: &str,
) -> Result<Option<StoredObject>, sqlx::Error> {
    // The single-row side tables come with the object: each statement is a round trip
    // to SQLite's thread.
    let Some(row) = sqlx::query(
        "SELECT o.*, m.fresh AS meta_fresh, m.original_creation_date AS meta_original,
                f.key_format_type AS meta_key_format
         FROM objects o
         LEFT JOIN object_meta m ON m.uid = o.uid
         LEFT JOIN key_formats f ON f.uid = o.uid
         WHERE o.uid = ? AND o.owner = ?",
    )
    .bind(uid)
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let mut obj = object_from_row(&row)?;
    if let Some(fresh) = row.try_get::<Option<bool>, _>("meta_fresh")? {
        obj.fresh = Some(fresh);
        obj.original_creation_date = row.try_get("meta_original")?;
    }
    if let Some(format) = row.try_get::<Option<i64>, _>("meta_key_format")? {
        obj.key_format =
            KeyFormatType(
                u32::try_from(format).map_err(|e| sqlx::Error::ColumnDecode {
                    index: "key_format_type".into(),
                    source: Box::new(e),
                })?,
            );
    }
    obj.names = sqlx::query_scalar("SELECT name FROM names WHERE uid = ? ORDER BY rowid")
        .bind(uid)
        .fetch_all(&mut *conn)
        .await?;
    obj.links = sqlx::query("SELECT link_type, linked_uid FROM links WHERE uid = ?")
        .bind(uid)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                LinkType(u32_col(r, "link_type")?),
                r.try_get::<String, _>("linked_uid")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    for row in sqlx::query("SELECT name, value FROM custom_attributes WHERE uid = ? ORDER BY rowid")
        .bind(uid)
        .fetch_all(&mut *conn)
        .await?
    {
        let name: String = row.try_get("name")?;
        let bytes: Vec<u8> = row.try_get("value")?;
        let value = ttlv::decode(&bytes, &Limits::default())
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        obj.custom.push((name, value));
    }
    Ok(Some(obj))
}

/// Writes the multi-valued attributes (names, links) of `obj`.
async fn write_multi(
    conn: &mut SqliteConnection,
    obj: &StoredObject,
    context: &str,
) -> Result<(), Error> {
    for name in &obj.names {
        sqlx::query("INSERT OR IGNORE INTO names (uid, name) VALUES (?, ?)")
            .bind(&obj.uid)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(store_err(context))?;
    }
    for (link_type, linked) in &obj.links {
        sqlx::query("INSERT OR IGNORE INTO links (uid, link_type, linked_uid) VALUES (?, ?, ?)")
            .bind(&obj.uid)
            .bind(i64::from(link_type.0))
            .bind(linked)
            .execute(&mut *conn)
            .await
            .map_err(store_err(context))?;
    }
    if let Some(fresh) = obj.fresh {
        sqlx::query(
            "INSERT OR REPLACE INTO object_meta (uid, fresh, original_creation_date)
             VALUES (?, ?, ?)",
        )
        .bind(&obj.uid)
        .bind(fresh)
        .bind(obj.original_creation_date)
        .execute(&mut *conn)
        .await
        .map_err(store_err(context))?;
    }
    if obj.key_format != KeyFormatType::RAW {
        sqlx::query("INSERT OR REPLACE INTO key_formats (uid, key_format_type) VALUES (?, ?)")
            .bind(&obj.uid)
            .bind(i64::from(obj.key_format.0))
            .execute(&mut *conn)
            .await
            .map_err(store_err(context))?;
    }
    for (name, value) in &obj.custom {
        sqlx::query("INSERT INTO custom_attributes (uid, name, value) VALUES (?, ?, ?)")
            .bind(&obj.uid)
            .bind(name)
            .bind(ttlv::encode(value))
            .execute(&mut *conn)
            .await
            .map_err(store_err(context))?;
    }
    Ok(())
}

fn u32_col(row: &SqliteRow, col: &str) -> Result<u32, sqlx::Error> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(e),
    })
}

fn opt_u32_col(row: &SqliteRow, col: &str) -> Result<Option<u32>, sqlx::Error> {
    let v: Option<i64> = row.try_get(col)?;
    v.map(|v| {
        u32::try_from(v).map_err(|e| sqlx::Error::ColumnDecode {
            index: col.to_string(),
            source: Box::new(e),
        })
    })
    .transpose()
}

fn object_from_row(row: &SqliteRow) -> Result<StoredObject, sqlx::Error> {
    Ok(StoredObject {
        uid: row.try_get("uid")?,
        object_type: ObjectType(u32_col(row, "object_type")?),
        algorithm: opt_u32_col(row, "algorithm")?.map(CryptographicAlgorithm),
        length: row.try_get("length")?,
        usage_mask: opt_u32_col(row, "usage_mask")?.map(CryptographicUsageMask),
        key_material: row
            .try_get::<Option<Vec<u8>>, _>("key_material")?
            .map(Zeroizing::new),
        names: Vec::new(),
        state: State(u32_col(row, "state")?),
        initial_date: row.try_get("initial_date")?,
        activation_date: row.try_get("activation_date")?,
        deactivation_date: row.try_get("deactivation_date")?,
        destroy_date: row.try_get("destroy_date")?,
        compromise_date: row.try_get("compromise_date")?,
        compromise_occurrence_date: row.try_get("compromise_occurrence_date")?,
        last_change_date: row.try_get("last_change_date")?,
        revocation_reason: opt_u32_col(row, "revocation_reason")?.map(RevocationReasonCode),
        revocation_message: row.try_get("revocation_message")?,
        links: Vec::new(),
        owner: row.try_get("owner")?,
        fresh: None,
        original_creation_date: None,
        custom: Vec::new(),
        key_format: KeyFormatType::RAW,
    })
}

/// Creates `path` empty with mode 0600 if it does not exist (so SQLite never creates
/// it with the process umask).
fn create_private_file(path: &Path) -> Result<(), Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_durable_settings_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        for _ in 0..4 {
            let mut conn = store.pool.acquire().await.unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let secure: i64 = sqlx::query_scalar("PRAGMA secure_delete")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!((sync, mode.as_str(), secure), (2, "wal", 1));
        }
        let mut writer = store.writes.writer.lock().await;
        let conn = writer.conn().unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let secure: i64 = sqlx::query_scalar("PRAGMA secure_delete")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!((sync, secure), (2, 1));
    }

    fn object(uid: &str) -> StoredObject {
        StoredObject {
            uid: uid.into(),
            object_type: ObjectType::SYMMETRIC_KEY,
            algorithm: Some(CryptographicAlgorithm::AES),
            length: Some(256),
            usage_mask: None,
            key_material: Some(Zeroizing::new(vec![7; 32])),
            names: vec![format!("name of {uid}")],
            state: State::PRE_ACTIVE,
            initial_date: 1,
            activation_date: None,
            deactivation_date: None,
            destroy_date: None,
            compromise_date: None,
            compromise_occurrence_date: None,
            last_change_date: 1,
            revocation_reason: None,
            revocation_message: None,
            links: Vec::new(),
            owner: "alice".into(),
            fresh: Some(true),
            original_creation_date: Some(1),
            custom: Vec::new(),
            key_format: KeyFormatType::RAW,
        }
    }

    #[tokio::test]
    async fn staged_writes_are_seen_by_their_write_and_by_readers_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        let mut write = store.write().await.unwrap();
        write.insert(&object("a")).await.unwrap();
        assert!(write.get("a", "alice").await.unwrap().is_some());
        assert!(store.get("a", "alice").await.unwrap().is_none());
        write.commit().await.unwrap();
        let read = store.get("a", "alice").await.unwrap().unwrap();
        assert_eq!(read.names, ["name of a"]);
        assert!(store.get("a", "bob").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_write_dropped_without_commit_leaves_nothing_and_the_next_one_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        let mut failed = store.write().await.unwrap();
        failed.insert(&object("lost")).await.unwrap();
        drop(failed);
        let mut write = store.write().await.unwrap();
        assert!(write.get("lost", "alice").await.unwrap().is_none());
        write.insert(&object("kept")).await.unwrap();
        write.commit().await.unwrap();
        assert!(store.get("lost", "alice").await.unwrap().is_none());
        assert!(store.get("kept", "alice").await.unwrap().is_some());
        // And after a reopen, from the file.
        store.close().await;
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        assert!(store.get("lost", "alice").await.unwrap().is_none());
        assert!(store.get("kept", "alice").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn concurrent_operations_all_commit_and_each_sees_the_ones_staged_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        let mut first = store.write().await.unwrap();
        first.insert(&object("base")).await.unwrap();
        first.commit().await.unwrap();
        // 32 operations at once, each a read-check-write of the same object (append a
        // name) plus an insert of its own: none may lose another's update.
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut write = store.write().await.unwrap();
                    let mut base = write.get("base", "alice").await.unwrap().unwrap();
                    base.names.push(format!("n{i}"));
                    write.update(&base).await.unwrap();
                    write.insert(&object(&format!("o{i}"))).await.unwrap();
                    write.commit().await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        store.close().await;
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        let base = store.get("base", "alice").await.unwrap().unwrap();
        assert_eq!(base.names.len(), 33);
        for i in 0..32 {
            assert!(
                store
                    .get(&format!("o{i}"), "alice")
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }

    #[tokio::test]
    async fn writes_after_close_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_in(dir.path()).await.unwrap();
        store.close().await;
        let mut write = store.write().await.unwrap();
        assert!(matches!(
            write.insert(&object("x")).await,
            Err(Error::Commit { .. })
        ));
    }
}
