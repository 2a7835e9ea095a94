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
//! neither attribute) and `custom_attributes` (a client's `x-` and vendor attributes,
//! each value as TTLV bytes). Writers are serialised by an in-process
//! mutex ([`KeyStore::lock_writes`]), so a read-check-write sequence (a state
//! transition) is atomic without SQLite busy-retry loops.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::sqlite::{SqliteRow, SqliteSynchronous};
use tokio::sync::{Mutex, MutexGuard};
use zeroize::Zeroizing;

use crate::error::Error;
use kmip::ttlv::{self, Item, Limits};
use kmip::types::{
    CryptographicAlgorithm, CryptographicUsageMask, LinkType, ObjectType, RevocationReasonCode,
    State,
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
#[derive(Clone, Debug)]
pub struct KeyStore {
    pool: SqlitePool,
    path: PathBuf,
    writes: Arc<Mutex<()>>,
}

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
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(store_err(format!("opening {}", path.display())))?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(store_err("creating the schema"))?;
        }
        Ok(KeyStore {
            pool,
            path: path.to_path_buf(),
            writes: Arc::new(Mutex::new(())),
        })
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the store's write lock: hold it across a read-check-write sequence.
    pub async fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Inserts a new object (with its names and links). Call with the write lock held
    /// if the insert depends on something read before.
    pub async fn insert(&self, obj: &StoredObject) -> Result<(), Error> {
        let context = format!("inserting object {}", obj.uid);
        let mut tx = self.pool.begin().await.map_err(store_err(&context))?;
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
        .execute(&mut *tx)
        .await
        .map_err(store_err(&context))?;
        Self::write_multi(&mut tx, obj, &context).await?;
        tx.commit().await.map_err(store_err(&context))
    }

    /// Rewrites an existing object's mutable fields (state, dates, revocation, key
    /// material, names, links). Hold [`lock_writes`](Self::lock_writes) from the read
    /// that produced `obj` to this call.
    pub async fn update(&self, obj: &StoredObject) -> Result<(), Error> {
        let context = format!("updating object {}", obj.uid);
        let mut tx = self.pool.begin().await.map_err(store_err(&context))?;
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
        .execute(&mut *tx)
        .await
        .map_err(store_err(&context))?;
        for table in ["names", "links", "custom_attributes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE uid = ?"))
                .bind(&obj.uid)
                .execute(&mut *tx)
                .await
                .map_err(store_err(&context))?;
        }
        Self::write_multi(&mut tx, obj, &context).await?;
        tx.commit().await.map_err(store_err(&context))
    }

    async fn write_multi(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        obj: &StoredObject,
        context: &str,
    ) -> Result<(), Error> {
        for name in &obj.names {
            sqlx::query("INSERT OR IGNORE INTO names (uid, name) VALUES (?, ?)")
                .bind(&obj.uid)
                .bind(name)
                .execute(&mut **tx)
                .await
                .map_err(store_err(context))?;
        }
        for (link_type, linked) in &obj.links {
            sqlx::query(
                "INSERT OR IGNORE INTO links (uid, link_type, linked_uid) VALUES (?, ?, ?)",
            )
            .bind(&obj.uid)
            .bind(i64::from(link_type.0))
            .bind(linked)
            .execute(&mut **tx)
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
            .execute(&mut **tx)
            .await
            .map_err(store_err(context))?;
        }
        for (name, value) in &obj.custom {
            sqlx::query("INSERT INTO custom_attributes (uid, name, value) VALUES (?, ?, ?)")
                .bind(&obj.uid)
                .bind(name)
                .bind(ttlv::encode(value))
                .execute(&mut **tx)
                .await
                .map_err(store_err(context))?;
        }
        Ok(())
    }

    /// The object `uid` if it exists and belongs to `owner`.
    pub async fn get(&self, uid: &str, owner: &str) -> Result<Option<StoredObject>, Error> {
        let context = format!("reading object {uid}");
        let Some(row) = sqlx::query("SELECT * FROM objects WHERE uid = ? AND owner = ?")
            .bind(uid)
            .bind(owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_err(&context))?
        else {
            return Ok(None);
        };
        let mut obj = object_from_row(&row).map_err(store_err(&context))?;
        obj.names = sqlx::query_scalar("SELECT name FROM names WHERE uid = ? ORDER BY rowid")
            .bind(uid)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err(&context))?;
        obj.links = sqlx::query("SELECT link_type, linked_uid FROM links WHERE uid = ?")
            .bind(uid)
            .fetch_all(&self.pool)
            .await
            .map_err(store_err(&context))?
            .iter()
            .map(|r| {
                Ok((
                    LinkType(u32_col(r, "link_type")?),
                    r.try_get::<String, _>("linked_uid")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(store_err(&context))?;
        if let Some(meta) =
            sqlx::query("SELECT fresh, original_creation_date FROM object_meta WHERE uid = ?")
                .bind(uid)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_err(&context))?
        {
            obj.fresh = Some(meta.try_get("fresh").map_err(store_err(&context))?);
            obj.original_creation_date = meta
                .try_get("original_creation_date")
                .map_err(store_err(&context))?;
        }
        for row in
            sqlx::query("SELECT name, value FROM custom_attributes WHERE uid = ? ORDER BY rowid")
                .bind(uid)
                .fetch_all(&self.pool)
                .await
                .map_err(store_err(&context))?
        {
            let name: String = row.try_get("name").map_err(store_err(&context))?;
            let bytes: Vec<u8> = row.try_get("value").map_err(store_err(&context))?;
            let value = ttlv::decode(&bytes, &Limits::default())
                .map_err(|e| store_err(&context)(sqlx::Error::Decode(Box::new(e))))?;
            obj.custom.push((name, value));
        }
        Ok(Some(obj))
    }

    /// Unique Identifiers of `owner`'s objects matching `filter`, most recently created
    /// first.
    pub async fn locate(&self, owner: &str, filter: &LocateFilter) -> Result<Vec<String>, Error> {
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
            .fetch_all(&self.pool)
            .await
            .map_err(store_err("locating objects"))
    }

    /// Closes the connection pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
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
    }
}
