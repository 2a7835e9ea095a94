//! The SQL statements the store runs, in one place (but for those of the key lifecycle,
//! which `lifecycle.rs` keeps beside the methods that run them).
//!
//! The statements use only what SQLite and PostgreSQL share: `$N` placeholders (SQLite
//! reads `$1` as parameter 1), `LIMIT ... OFFSET ...`, `COALESCE`, `substr`/`length`,
//! plain joins, `INSERT ... ON CONFLICT` (SQLite 3.24+), `UPDATE ... RETURNING` (SQLite
//! 3.35+). No statement depends on a collation: text is only compared for equality, and
//! what is sorted by text is ids in hex (digits before letters in every collation),
//! usernames only as a tie-break of equal creation times, or is sorted again in Rust. What differs between the dialects is a [`Sql::Dialect`], marked
//! `DIALECT:` and listed here:
//!
//! * [`BEGIN_WRITE`]: SQLite needs `BEGIN IMMEDIATE` so that a write transaction takes
//!   the write lock at its start (and waits on the busy timeout) instead of failing with
//!   `SQLITE_BUSY` when it first writes; so on SQLite write transactions run one at a
//!   time. PostgreSQL spells it `BEGIN` (READ COMMITTED), and the reads that decide a
//!   write take row locks instead, so that two writers that could conflict queue on a
//!   lock and the second then reads what the first committed:
//!   - [`CLUSTER_LOCK`] (`FOR UPDATE`): a key change, a garbage collection and a snapshot
//!     deletion of one cluster queue on the cluster's row;
//!   - [`CLUSTER_TREE_LOCK`]: a cluster deletion locks the cluster and its parts;
//!   - [`AUDIT_HEAD_FOR_UPDATE`]: every audit append queues on the one head row;
//!   - [`INSERT_INTENT`] (`FOR SHARE`): a key change's claim waits for a commit of the
//!     cluster's key in flight.
//! * [`BEGIN_SNAPSHOT`]: audit verification reads the head and the whole chain from one
//!   snapshot: SQLite's deferred `BEGIN` (WAL), PostgreSQL's `REPEATABLE READ, READ
//!   ONLY` (under READ COMMITTED each batch would see appends made since the head was
//!   read).
//!
//! Snapshots and garbage collection: a snapshot commit holds a `KEY SHARE` lock on its
//! cluster's row from its `INSERT INTO snapshots` on (PostgreSQL's foreign key check),
//! and a lock on every pack row it references. A collection takes [`CLUSTER_LOCK`]
//! first, which conflicts with `KEY SHARE`: it waits for the commits in flight and holds
//! off new ones until it is done, then reads the references as committed. Without that
//! lock a collection could miss a reference being committed, try to delete the pack,
//! and fail on the foreign key from `snapshot_packs` once the commit went through.
//! So, as on SQLite, a commit and a collection of one cluster never interleave: a commit
//! that reuses a chunk of a collected pack does not find it (the store says which
//! chunk), and a collection never fails because of a commit. Concurrent commits of one
//! cluster do run side by side; two that store the same new chunk queue on its unique
//! index entry and the second gets a conflict. [`TAKE_RESTORE_DOWNLOAD`] and
//! [`ACQUIRE_LEASE`] are single statements whose condition PostgreSQL re-checks on the
//! locked row, atomic on both. Multi-row inserts are built by [`insert_chunks`] and
//! [`insert_references`] with `$N` placeholders.

use crate::db::Sql;

/// `sql` on SQLite, `sql FOR UPDATE` on PostgreSQL (SQLite has no row locks: its write
/// transactions are serial).
macro_rules! for_update {
    ($($sql:tt)*) => {
        Sql::Dialect {
            sqlite: concat!($($sql)*),
            postgres: concat!($($sql)*, " FOR UPDATE"),
        }
    };
}

// ----- transactions

/// DIALECT: starts a write transaction.
pub const BEGIN_WRITE: Sql = Sql::Dialect {
    sqlite: "BEGIN IMMEDIATE",
    postgres: "BEGIN",
};

/// DIALECT: starts a read-only transaction that reads from one snapshot throughout.
pub const BEGIN_SNAPSHOT: Sql = Sql::Dialect {
    sqlite: "BEGIN",
    postgres: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
};

// ----- schema

/// The highest migration applied successfully (0 if none).
pub const SCHEMA_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = TRUE";

// ----- groups

/// Columns of a group row, in the order `rows::group` reads them by name.
macro_rules! group_columns {
    () => {
        "id, name, org_id, created_us"
    };
}

/// Inserts a group.
pub const INSERT_GROUP: &str =
    "INSERT INTO project_groups (id, name, org_id, created_us) VALUES ($1, $2, $3, $4)";

/// A group by id.
pub const GROUP_BY_ID: &str = concat!(
    "SELECT ",
    group_columns!(),
    " FROM project_groups WHERE id = $1"
);

/// A group by name.
pub const GROUP_BY_NAME: &str = concat!(
    "SELECT ",
    group_columns!(),
    " FROM project_groups WHERE name = $1"
);

/// A page of groups, oldest first. `$1` limit, `$2` offset.
pub const LIST_GROUPS: &str = concat!(
    "SELECT ",
    group_columns!(),
    " FROM project_groups ORDER BY created_us, id LIMIT $1 OFFSET $2",
);

/// Number of groups.
pub const COUNT_GROUPS: &str = "SELECT COUNT(*) FROM project_groups";

// ----- clusters

macro_rules! cluster_columns {
    () => {
        "id, group_id, cluster_name, type_name, replica_set_name, shard_name, parent_cluster_id, created_us"
    };
}

/// Inserts a cluster record.
pub const INSERT_CLUSTER: &str = "INSERT INTO clusters \
     (id, group_id, cluster_name, type_name, replica_set_name, shard_name, parent_cluster_id, created_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Top-level clusters of a group.
pub const COUNT_TOP_LEVEL_CLUSTERS: &str =
    "SELECT COUNT(*) FROM clusters WHERE group_id = $1 AND parent_cluster_id IS NULL";

/// A cluster of a group. `$1` group, `$2` cluster.
pub const CLUSTER_IN_GROUP: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    " FROM clusters WHERE group_id = $1 AND id = $2"
);

/// A cluster by id alone.
pub const CLUSTER_BY_ID: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    " FROM clusters WHERE id = $1"
);

/// DIALECT: a cluster's id, read first in a key change, a garbage collection and a
/// snapshot deletion; on PostgreSQL `FOR UPDATE`, so that they queue (first keys
/// included), and a collection waits for snapshot commits in flight.
pub const CLUSTER_LOCK: Sql = for_update!("SELECT id FROM clusters WHERE id = $1");

/// DIALECT: the ids of a cluster and its parts, read first in a cluster deletion
/// (PostgreSQL: `FOR UPDATE`, which waits for writes that refer to any of them).
pub const CLUSTER_TREE_LOCK: Sql =
    for_update!("SELECT id FROM clusters WHERE id = $1 OR parent_cluster_id = $1");

/// A page of a group's clusters. `$1` group, `$2` limit, `$3` offset.
pub const LIST_CLUSTERS: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    " FROM clusters WHERE group_id = $1 ORDER BY created_us, id LIMIT $2 OFFSET $3",
);

/// Number of a group's clusters.
pub const COUNT_CLUSTERS: &str = "SELECT COUNT(*) FROM clusters WHERE group_id = $1";

/// A page of the parts of one sharded cluster. `$1` group, `$2` parent, `$3` limit, `$4` offset.
pub const LIST_CLUSTER_PARTS_PAGE: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    " FROM clusters WHERE group_id = $1 AND parent_cluster_id = $2 \
     ORDER BY created_us, id LIMIT $3 OFFSET $4",
);

/// Number of parts of one sharded cluster in a group. `$1` group, `$2` parent.
pub const COUNT_CLUSTER_PARTS: &str =
    "SELECT COUNT(*) FROM clusters WHERE group_id = $1 AND parent_cluster_id = $2";

/// Every part of a sharded cluster.
pub const CLUSTER_PARTS: &str = concat!(
    "SELECT ",
    cluster_columns!(),
    " FROM clusters WHERE parent_cluster_id = $1 ORDER BY created_us, id",
);

/// The ids of a cluster and its parts, as a subquery on `$1` (the cluster id).
macro_rules! cluster_and_parts {
    () => {
        "(SELECT id FROM clusters WHERE id = $1 OR parent_cluster_id = $1)"
    };
}

/// Deletes the data keys of a cluster and its parts.
pub const DELETE_TREE_DATA_KEYS: &str = concat!(
    "DELETE FROM data_keys WHERE cluster_id IN ",
    cluster_and_parts!()
);

/// Deletes the master key records of a cluster and its parts.
pub const DELETE_TREE_MASTER_KEYS: &str = concat!(
    "DELETE FROM master_keys WHERE cluster_id IN ",
    cluster_and_parts!()
);

/// Deletes the intents of a cluster and its parts.
pub const DELETE_TREE_INTENTS: &str = concat!(
    "DELETE FROM key_intents WHERE cluster_id IN ",
    cluster_and_parts!()
);

/// Deletes the backup configs of a cluster and its parts.
pub const DELETE_TREE_CONFIGS: &str = concat!(
    "DELETE FROM backup_configs WHERE cluster_id IN ",
    cluster_and_parts!()
);

/// Deletes the parts of a cluster.
pub const DELETE_CLUSTER_PARTS: &str = "DELETE FROM clusters WHERE parent_cluster_id = $1";

/// Deletes one cluster record.
pub const DELETE_CLUSTER: &str = "DELETE FROM clusters WHERE id = $1";

// ----- backup configs

macro_rules! config_columns {
    () => {
        "b.cluster_id, b.group_id, b.status_name, b.encryption_enabled, \
     b.storage_engine_name, b.ssl_enabled, b.excluded_namespaces, b.included_namespaces, \
     b.auth_mechanism_name"
    };
}

/// Inserts a backup config.
pub const INSERT_CONFIG: &str = "INSERT INTO backup_configs \
     (cluster_id, group_id, status_name, encryption_enabled, storage_engine_name, ssl_enabled, \
      excluded_namespaces, included_namespaces, auth_mechanism_name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Rewrites a backup config (the cluster and group identify it).
pub const UPDATE_CONFIG: &str = "UPDATE backup_configs SET status_name = $3, encryption_enabled = $4, \
     storage_engine_name = $5, ssl_enabled = $6, excluded_namespaces = $7, \
     included_namespaces = $8, auth_mechanism_name = $9 \
     WHERE cluster_id = $1 AND group_id = $2";

/// A cluster's backup config. `$1` group, `$2` cluster.
pub const CONFIG: &str = concat!(
    "SELECT ",
    config_columns!(),
    " FROM backup_configs b WHERE b.group_id = $1 AND b.cluster_id = $2",
);

/// A cluster of a group with its backup config, in one row: the cluster's columns, then
/// the config's but its `group_id` (the cluster's, the same). `$1` group, `$2` cluster.
pub const CLUSTER_WITH_CONFIG: &str = concat!(
    "SELECT c.id, c.group_id, c.cluster_name, c.type_name, c.replica_set_name, \
     c.shard_name, c.parent_cluster_id, c.created_us, \
     b.cluster_id, b.status_name, b.encryption_enabled, b.storage_engine_name, \
     b.ssl_enabled, b.excluded_namespaces, b.included_namespaces, b.auth_mechanism_name",
    " FROM clusters c JOIN backup_configs b ON b.cluster_id = c.id AND b.group_id = c.group_id",
    " WHERE c.group_id = $1 AND c.id = $2",
);

/// A page of a group's configs, in cluster order. `$1` group, `$2` limit, `$3` offset.
pub const LIST_CONFIGS: &str = concat!(
    "SELECT ",
    config_columns!(),
    " FROM backup_configs b JOIN clusters c ON c.id = b.cluster_id WHERE b.group_id = $1 \
     ORDER BY c.created_us, c.id LIMIT $2 OFFSET $3",
);

/// Number of a group's configs.
pub const COUNT_CONFIGS: &str = "SELECT COUNT(*) FROM backup_configs WHERE group_id = $1";

// ----- master keys

macro_rules! key_columns {
    () => {
        "cluster_id, generation, kmip_uid, kmip_server, kmip_name, created_us, retired_us, rotation_type, requested_by"
    };
}

/// The current master key of a cluster.
pub const CURRENT_KEY: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM master_keys WHERE cluster_id = $1 AND retired_us IS NULL"
);

/// Every master key of a cluster, newest first.
pub const MASTER_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM master_keys WHERE cluster_id = $1 ORDER BY generation DESC"
);

/// Retires the current key, if any, and returns its uid and generation (a key change
/// reads and retires it in one statement, and undoes it by rolling back when it is not
/// the key the change started from). `$1` cluster, `$2` time. The update's row lock
/// holds off any other change of the cluster's key until the commit.
pub const RETIRE_CURRENT_KEY: &str = "UPDATE master_keys SET retired_us = $2 \
     WHERE cluster_id = $1 AND retired_us IS NULL RETURNING kmip_uid, generation";

/// The next generation number of a cluster's keys.
pub const NEXT_GENERATION: &str =
    "SELECT COALESCE(MAX(generation), 0) + 1 FROM master_keys WHERE cluster_id = $1";

/// Inserts a master key record.
pub const INSERT_KEY: &str = "INSERT INTO master_keys \
     (cluster_id, generation, kmip_uid, kmip_server, kmip_name, created_us, retired_us, rotation_type, requested_by) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)";

// ----- data keys

/// The data keys of a cluster.
pub const DATA_KEYS: &str = "SELECT id, cluster_id, wrapped_hex, master_key_uid, created_us \
     FROM data_keys WHERE cluster_id = $1 ORDER BY created_us, id";

/// Deletes the data keys of one cluster, returning their ids.
pub const DELETE_DATA_KEYS: &str = "DELETE FROM data_keys WHERE cluster_id = $1 RETURNING id";

/// Inserts a data key.
pub const INSERT_DATA_KEY: &str = "INSERT INTO data_keys (id, cluster_id, wrapped_hex, master_key_uid, created_us) \
     VALUES ($1, $2, $3, $4, $5)";

// ----- intents

/// [`INSERT_INTENT`] up to the end of its subquery.
macro_rules! insert_intent {
    () => {
        "INSERT INTO key_intents \
         (id, cluster_id, key_name, previous_uid, new_uid, phase, rotation_type, requested_by, created_us) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
         WHERE $4 IS NOT DISTINCT FROM \
         (SELECT kmip_uid FROM master_keys WHERE cluster_id = $2 AND retired_us IS NULL"
    };
}

macro_rules! intent_columns {
    () => {
        "id, cluster_id, key_name, previous_uid, new_uid, phase, rotation_type, requested_by, created_us"
    };
}

/// DIALECT: inserts an intent if the cluster's current key is still the one it names as
/// its previous key (`$4`, NULL for none); no row is inserted otherwise. A key change
/// thus claims a cluster and checks its starting point in one statement. PostgreSQL
/// reads the current key `FOR SHARE`: a key change committing meanwhile has that row
/// locked, so the read waits for it and then finds the key retired (READ COMMITTED
/// re-checks a locked row), and the intent is not inserted.
pub const INSERT_INTENT: Sql = Sql::Dialect {
    sqlite: concat!(insert_intent!(), ")"),
    postgres: concat!(insert_intent!(), " FOR SHARE)"),
};

/// Marks an intent committed. `$1` id, `$2` cluster, `$3` phase, `$4` new uid.
pub const COMMIT_INTENT: &str =
    "UPDATE key_intents SET phase = $3, new_uid = $4 WHERE id = $1 AND cluster_id = $2";

/// Deletes an intent.
pub const DELETE_INTENT: &str = "DELETE FROM key_intents WHERE id = $1";

/// Every intent, oldest first.
pub const INTENTS: &str = concat!(
    "SELECT ",
    intent_columns!(),
    " FROM key_intents ORDER BY created_us, id"
);

// ----- users

macro_rules! user_columns {
    () => {
        "id, username, ha1_md5_hex, ha1_sha256_hex, roles_json, access_list_json, created_us"
    };
}

/// Inserts a user.
pub const INSERT_USER: &str = "INSERT INTO users \
     (id, username, ha1_md5_hex, ha1_sha256_hex, roles_json, access_list_json, created_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A user by name.
pub const USER_BY_NAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE username = $1"
);

/// Every user.
pub const LIST_USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users ORDER BY created_us, username"
);

/// Replaces a user's secrets, roles and access list. `$1` username.
pub const UPDATE_USER: &str = "UPDATE users SET ha1_md5_hex = $2, ha1_sha256_hex = $3, roles_json = $4, \
     access_list_json = $5 WHERE username = $1";

/// Deletes a user.
pub const DELETE_USER: &str = "DELETE FROM users WHERE username = $1";

// ----- audit

macro_rules! audit_columns {
    () => {
        "seq, id, created_us, event_type, group_id, cluster_id, username, remote_address, \
     outcome, old_key_uid, new_key_uid, detail, prev_hash, hash"
    };
}

/// The end of the chain, read to verify it.
pub const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// DIALECT: the end of the chain, read to append (PostgreSQL: `FOR UPDATE`, so appends
/// queue on the head row).
pub const AUDIT_HEAD_FOR_UPDATE: Sql = for_update!("SELECT seq, hash FROM audit_head WHERE id = 1");

/// Moves the end of the chain. `$1` seq, `$2` hash.
pub const SET_AUDIT_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// Appends an event.
pub const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (seq, id, created_us, event_type, group_id, cluster_id, username, remote_address, outcome, \
      old_key_uid, new_key_uid, detail, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// A page of events, newest first. `$1` limit, `$2` offset.
pub const LIST_AUDIT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events ORDER BY seq DESC LIMIT $1 OFFSET $2"
);

/// Number of events.
pub const COUNT_AUDIT: &str = "SELECT COUNT(*) FROM audit_events";

/// A page of one group's events, newest first. `$1` group, `$2` limit, `$3` offset.
pub const LIST_AUDIT_GROUP: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE group_id = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3",
);

/// Number of one group's events.
pub const COUNT_AUDIT_GROUP: &str = "SELECT COUNT(*) FROM audit_events WHERE group_id = $1";

/// One audit event of a group, by id.
pub const GET_AUDIT_EVENT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE group_id = $1 AND id = $2"
);

/// A batch of the chain in order, for verification. `$1` last seq seen, `$2` limit.
pub const AUDIT_CHAIN_BATCH: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
);

// ----- snapshots

macro_rules! snapshot_columns {
    () => {
        "id, group_id, cluster_id, created_us, kind, data_size_bytes, stored_size_bytes, \
     file_size_bytes, expires_us, do_not_delete, data_key_id"
    };
}

/// Inserts a snapshot.
pub const INSERT_SNAPSHOT: &str = concat!(
    "INSERT INTO snapshots (",
    snapshot_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);

/// A snapshot of a cluster. `$1` cluster, `$2` snapshot.
pub const SNAPSHOT: &str = concat!(
    "SELECT ",
    snapshot_columns!(),
    " FROM snapshots WHERE cluster_id = $1 AND id = $2"
);

/// Whether a snapshot exists (any cluster).
pub const SNAPSHOT_EXISTS: &str = "SELECT id FROM snapshots WHERE id = $1";

/// A page of a cluster's snapshots, newest first. `$1` cluster, `$2` limit, `$3` offset.
pub const LIST_SNAPSHOTS: &str = concat!(
    "SELECT ",
    snapshot_columns!(),
    " FROM snapshots WHERE cluster_id = $1 ORDER BY created_us DESC, id DESC LIMIT $2 OFFSET $3"
);

/// Number of a cluster's snapshots.
pub const COUNT_SNAPSHOTS: &str = "SELECT COUNT(*) FROM snapshots WHERE cluster_id = $1";

/// Number of snapshots of a cluster and its parts (`$1` the cluster).
pub const COUNT_TREE_SNAPSHOTS: &str = concat!(
    "SELECT COUNT(*) FROM snapshots WHERE cluster_id IN ",
    cluster_and_parts!()
);

/// Number of packs recorded for a cluster and its parts (`$1` the cluster); every
/// recorded chunk is in a recorded pack.
pub const COUNT_TREE_PACKS: &str = concat!(
    "SELECT COUNT(*) FROM packs WHERE cluster_id IN ",
    cluster_and_parts!()
);

/// Writes the mutable fields of a snapshot. `$1` id, `$2` cluster, `$3` expires, `$4` do
/// not delete.
pub const UPDATE_SNAPSHOT: &str =
    "UPDATE snapshots SET expires_us = $3, do_not_delete = $4 WHERE id = $1 AND cluster_id = $2";

/// Deletes the pack references of a snapshot.
pub const DELETE_SNAPSHOT_PACKS: &str = "DELETE FROM snapshot_packs WHERE snapshot_id = $1";

/// Deletes a snapshot. `$1` id, `$2` cluster.
pub const DELETE_SNAPSHOT: &str = "DELETE FROM snapshots WHERE id = $1 AND cluster_id = $2";

// ----- chunks

/// Rows per multi-row `INSERT INTO chunks` (7 parameters each: 3,500 per statement, far
/// below SQLite's 32,766 and PostgreSQL's 65,535).
pub const CHUNK_BATCH: usize = 500;

/// Rows per multi-row `INSERT INTO snapshot_packs` or `INSERT INTO packs` (3 and 2
/// parameters each).
pub const REFERENCE_BATCH: usize = 1000;

/// `INSERT INTO chunks` of `rows` rows: `(cluster_id, chunk_id, pack_id, record_offset,
/// record_length, plaintext_length, stored_by)` each.
pub fn insert_chunks(rows: usize) -> String {
    multi_row_insert(
        "INSERT INTO chunks (cluster_id, chunk_id, pack_id, record_offset, record_length, \
         plaintext_length, stored_by) VALUES ",
        7,
        rows,
    )
}

/// `INSERT INTO snapshot_packs` of `rows` rows: `(snapshot_id, cluster_id, pack_id)` each.
pub fn insert_references(rows: usize) -> String {
    multi_row_insert(
        "INSERT INTO snapshot_packs (snapshot_id, cluster_id, pack_id) VALUES ",
        3,
        rows,
    )
}

/// `INSERT INTO packs` of `rows` rows, `(cluster_id, pack_id)` each, leaving a pack
/// already recorded as it is.
pub fn insert_packs_if_new(rows: usize) -> String {
    let mut sql = multi_row_insert("INSERT INTO packs (cluster_id, pack_id) VALUES ", 2, rows);
    sql.push_str(" ON CONFLICT (cluster_id, pack_id) DO NOTHING");
    sql
}

/// `head` followed by `rows` tuples of `columns` numbered placeholders.
fn multi_row_insert(head: &str, columns: usize, rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(head.len() + rows * columns * 6);
    sql.push_str(head);
    let mut n = 0usize;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            // Writing to a String cannot fail.
            let _ = write!(sql, "${n}");
        }
        sql.push(')');
    }
    sql
}

/// Which of a list of chunk ids a cluster has: `$1` cluster, then `ids` placeholders.
pub fn stored_chunk_ids(ids: usize) -> String {
    in_list(
        "SELECT chunk_id FROM chunks WHERE cluster_id = $1 AND chunk_id IN (",
        ids,
    )
}

/// How many of `ids` chunk ids (parameters from `$2`) are stored for a cluster (`$1`):
/// one row, where [`stored_chunk_ids`] returns one per chunk found.
pub fn count_stored_chunks(ids: usize) -> String {
    in_list(
        "SELECT COUNT(*) FROM chunks WHERE cluster_id = $1 AND chunk_id IN (",
        ids,
    )
}

/// `head` (ending in `IN (`) and `ids` parameters from `$2`, closed.
fn in_list(head: &str, ids: usize) -> String {
    in_list_from(head, 2, ids)
}

/// `head` (ending in `IN (`) and `ids` parameters from `$first`, closed.
fn in_list_from(head: &str, first: usize, ids: usize) -> String {
    let mut sql = String::from(head);
    for i in 0..ids {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('$');
        sql.push_str(&(i + first).to_string());
    }
    sql.push(')');
    sql
}

/// `INSERT INTO chunks` of `rows` rows, as [`insert_chunks`], leaving a chunk already
/// recorded for its cluster as it is.
pub fn insert_chunks_if_new(rows: usize) -> String {
    let mut sql = insert_chunks(rows);
    sql.push_str(" ON CONFLICT (cluster_id, chunk_id) DO NOTHING");
    sql
}

/// The locations of a list of chunk ids of a cluster: `$1` cluster, then `ids`
/// placeholders.
pub fn chunk_locations(ids: usize) -> String {
    in_list(
        "SELECT cluster_id, chunk_id, pack_id, record_offset, record_length, \
         plaintext_length, stored_by FROM chunks WHERE cluster_id = $1 AND chunk_id IN (",
        ids,
    )
}

/// The packs of a list of chunk ids of a cluster, with each chunk's plaintext length
/// and its record's length if snapshot `$1` stored it (else 0): `(chunk_id, pack_id,
/// plaintext_length, stored_here)` rows. `$1` snapshot, `$2` cluster, then `ids`
/// placeholders from `$3` (numbered in the order they appear: SQLite numbers `$N`
/// parameters by first appearance).
pub fn chunk_packs(ids: usize) -> String {
    in_list_from(
        "SELECT chunk_id, pack_id, plaintext_length, \
         CASE WHEN stored_by = $1 THEN record_length ELSE 0 END AS stored_here \
         FROM chunks WHERE cluster_id = $2 AND chunk_id IN (",
        3,
        ids,
    )
}

/// The packs of a batch of `ids` chunks of a cluster, one row per pack: `(pack_id,
/// found, stored_here)`, `found` counting the batch's chunks in that pack, `stored_here`
/// the sum of their records' lengths stored by snapshot `$1`. With `lengths`, a chunk
/// counts only if its plaintext length is the one listed. Parameters in the order they
/// appear: `$1` snapshot, then each id (and its length, with `lengths`), then the
/// cluster. The rows found add up to the batch exactly when every chunk is stored (with
/// its length): [`chunk_packs`]'s row a chunk, each a hand-off from SQLite's worker
/// thread, is then not needed. The list of ids is joined as a table (`VALUES`, whose
/// columns both dialects name `column1`, `column2`), each driving a lookup by key:
/// `CROSS JOIN` is how SQLite is told to loop over the list outside (with a plain
/// join it preferred to scan the cluster's chunks in pack order, for the `GROUP BY`,
/// probing the list: every chunk of the cluster read for each batch); PostgreSQL
/// plans it as any inner join. (PostgreSQL's `SUM` of a `BIGINT` is a `NUMERIC`: cast
/// back.)
pub fn chunk_packs_grouped(ids: usize, lengths: bool) -> String {
    let mut sql = String::from(
        "SELECT c.pack_id, COUNT(*) AS found, \
         CAST(SUM(CASE WHEN c.stored_by = $1 THEN c.record_length ELSE 0 END) AS BIGINT) \
         AS stored_here FROM (VALUES ",
    );
    let mut n = 2;
    for i in 0..ids {
        if i > 0 {
            sql.push_str(", ");
        }
        if lengths {
            // PostgreSQL types a VALUES column by its first row; the cast makes it
            // BIGINT, as the column it is compared with.
            sql.push_str(&format!("(${n}, CAST(${} AS BIGINT))", n + 1));
            n += 2;
        } else {
            sql.push_str(&format!("(${n})"));
            n += 1;
        }
    }
    sql.push_str(&format!(
        ") AS v CROSS JOIN chunks c WHERE c.cluster_id = ${n} AND c.chunk_id = v.column1"
    ));
    if lengths {
        sql.push_str(" AND c.plaintext_length = v.column2");
    }
    sql.push_str(" GROUP BY c.pack_id");
    sql
}

/// Sets a snapshot's stored size, counted by its commit. `$1` snapshot, `$2` bytes.
pub const SET_SNAPSHOT_STORED_SIZE: &str =
    "UPDATE snapshots SET stored_size_bytes = $2 WHERE id = $1";

/// Every chunk id of a cluster.
pub const CHUNK_IDS: &str = "SELECT chunk_id FROM chunks WHERE cluster_id = $1";

/// The packs a snapshot uses, in id order. `$1` snapshot.
pub const SNAPSHOT_PACKS: &str =
    "SELECT pack_id FROM snapshot_packs WHERE snapshot_id = $1 ORDER BY pack_id";

/// The packs of a cluster (`$1`) that no snapshot uses, in id order.
pub const GARBAGE_PACKS: &str = "SELECT pack_id FROM packs p WHERE p.cluster_id = $1 \
     AND NOT EXISTS (SELECT 1 FROM snapshot_packs r \
     WHERE r.cluster_id = p.cluster_id AND r.pack_id = p.pack_id) ORDER BY pack_id";

/// Deletes the chunk records of a cluster (`$1`) in `packs` packs (parameters from `$2`).
pub fn delete_pack_chunks(packs: usize) -> String {
    in_list(
        "DELETE FROM chunks WHERE cluster_id = $1 AND pack_id IN (",
        packs,
    )
}

/// Deletes the records of `packs` packs of a cluster (`$1`; parameters from `$2`).
pub fn delete_packs(packs: usize) -> String {
    in_list(
        "DELETE FROM packs WHERE cluster_id = $1 AND pack_id IN (",
        packs,
    )
}

/// Every pack recorded for a cluster.
pub const PACKS_IN_USE: &str = "SELECT pack_id FROM packs WHERE cluster_id = $1 ORDER BY pack_id";

// ----- restore jobs

macro_rules! restore_job_columns {
    () => {
        "id, group_id, cluster_id, snapshot_id, created_us, expires_us, token_sha256, \
     max_downloads, downloads, requested_by"
    };
}

/// Inserts a restore job if its snapshot exists in its cluster and group (`$2` group, `$3`
/// cluster, `$4` snapshot); no row is inserted otherwise.
pub const INSERT_RESTORE_JOB: &str = concat!(
    "INSERT INTO restore_jobs (",
    restore_job_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
     WHERE EXISTS (SELECT 1 FROM snapshots WHERE id = $4 AND cluster_id = $3 AND group_id = $2)"
);

/// A restore job of a cluster. `$1` cluster, `$2` job.
pub const RESTORE_JOB: &str = concat!(
    "SELECT ",
    restore_job_columns!(),
    " FROM restore_jobs WHERE cluster_id = $1 AND id = $2"
);

/// A page of a cluster's restore jobs, newest first. `$1` cluster, `$2` limit, `$3` offset.
pub const LIST_RESTORE_JOBS: &str = concat!(
    "SELECT ",
    restore_job_columns!(),
    " FROM restore_jobs WHERE cluster_id = $1 ORDER BY created_us DESC, id DESC LIMIT $2 OFFSET $3"
);

/// Number of a cluster's restore jobs.
pub const COUNT_RESTORE_JOBS: &str = "SELECT COUNT(*) FROM restore_jobs WHERE cluster_id = $1";

/// Counts one download if the job has one left, and returns the job as counted: one
/// statement, so two takes can never both get the last download (`RETURNING` is in
/// SQLite 3.35+ and PostgreSQL).
pub const TAKE_RESTORE_DOWNLOAD: &str = concat!(
    "UPDATE restore_jobs SET downloads = downloads + 1 WHERE id = $1 AND downloads < max_downloads \
     RETURNING ",
    restore_job_columns!()
);

/// Deletes the restore jobs of a cluster and its parts.
pub const DELETE_TREE_RESTORE_JOBS: &str = concat!(
    "DELETE FROM restore_jobs WHERE cluster_id IN ",
    cluster_and_parts!()
);

// ----- re-encryption jobs (compromise recovery)

macro_rules! reencryption_job_columns {
    () => {
        "id, group_id, cluster_id, new_data_key_id, status, created_us, finished_us, \
     snapshots_total, snapshots_done, bytes_total, bytes_done, requested_by, error"
    };
}

/// Inserts a re-encryption job (13 columns, in [`reencryption_job_columns`] order).
pub const INSERT_REENCRYPTION_JOB: &str = concat!(
    "INSERT INTO reencryption_jobs (",
    reencryption_job_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);

/// A re-encryption job of a cluster. `$1` cluster, `$2` job.
pub const REENCRYPTION_JOB: &str = concat!(
    "SELECT ",
    reencryption_job_columns!(),
    " FROM reencryption_jobs WHERE cluster_id = $1 AND id = $2"
);

/// A page of a cluster's re-encryption jobs, newest first. `$1` cluster, `$2` limit,
/// `$3` offset.
pub const LIST_REENCRYPTION_JOBS: &str = concat!(
    "SELECT ",
    reencryption_job_columns!(),
    " FROM reencryption_jobs WHERE cluster_id = $1 \
     ORDER BY created_us DESC, id DESC LIMIT $2 OFFSET $3"
);

/// Number of a cluster's re-encryption jobs.
pub const COUNT_REENCRYPTION_JOBS: &str =
    "SELECT COUNT(*) FROM reencryption_jobs WHERE cluster_id = $1";

/// Every running re-encryption job, oldest first.
pub const RUNNING_REENCRYPTION_JOBS: &str = concat!(
    "SELECT ",
    reencryption_job_columns!(),
    " FROM reencryption_jobs WHERE status = 'RUNNING' ORDER BY created_us, id"
);

/// Moves a snapshot to another data key if it is under the expected one. `$1` snapshot,
/// `$2` cluster, `$3` expected data key, `$4` new data key.
pub const SWITCH_SNAPSHOT_DATA_KEY: &str = "UPDATE snapshots SET data_key_id = $4 \
     WHERE id = $1 AND cluster_id = $2 AND data_key_id = $3";

/// Counts one rewritten snapshot of a running job. `$1` job, `$2` bytes.
pub const COUNT_REENCRYPTED_SNAPSHOT: &str = "UPDATE reencryption_jobs \
     SET snapshots_done = snapshots_done + 1, bytes_done = bytes_done + $2 \
     WHERE id = $1 AND status = 'RUNNING'";

/// Number of a cluster's snapshots under a data key other than `$2`.
pub const COUNT_SNAPSHOTS_OFF_KEY: &str =
    "SELECT COUNT(*) FROM snapshots WHERE cluster_id = $1 AND data_key_id <> $2";

/// A data key of a cluster, by id. `$1` cluster, `$2` key.
pub const DATA_KEY_EXISTS: &str = "SELECT id FROM data_keys WHERE cluster_id = $1 AND id = $2";

/// Deletes every data key of a cluster but one. `$1` cluster, `$2` the key kept.
pub const DELETE_OTHER_DATA_KEYS: &str = "DELETE FROM data_keys WHERE cluster_id = $1 AND id <> $2";

/// Ends a running job. `$1` job, `$2` status, `$3` finished, `$4` error, `$5` whether the
/// totals become what was done.
pub const END_REENCRYPTION_JOB: &str = "UPDATE reencryption_jobs \
     SET status = $2, finished_us = $3, error = $4, \
     snapshots_total = CASE WHEN $5 THEN snapshots_done ELSE snapshots_total END, \
     bytes_total = CASE WHEN $5 THEN bytes_done ELSE bytes_total END \
     WHERE id = $1 AND status = 'RUNNING'";

// ----- several nodes: leases and shared secrets

/// Takes or renews a lease in one statement. `$1` name, `$2` holder, `$3` new expiry,
/// `$4` now. It changes one row (inserted, or taken over) if nobody holds the lease, if
/// it expired, or if `$2` holds it; none otherwise. On PostgreSQL a conflicting insert
/// waits for the other transaction and then evaluates the `WHERE` on the row as
/// committed, so two callers can never both change a row.
pub const ACQUIRE_LEASE: &str = "INSERT INTO leases (name, holder, expires_us) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_us = excluded.expires_us \
     WHERE leases.expires_us <= $4 OR leases.holder = $2";

/// Gives a lease back. `$1` name, `$2` holder.
pub const RELEASE_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

/// The leases whose name starts with `$1` and that have not expired at `$2`. A prefix
/// test by `substr`, not `LIKE`: SQLite's `LIKE` ignores ASCII case and PostgreSQL's does
/// not, and `_` and `%` would need escaping. Unordered: the store sorts by name.
pub const LIVE_LEASES: &str = "SELECT name, holder, expires_us FROM leases \
     WHERE substr(name, 1, length($1)) = $1 AND expires_us > $2";

/// Deletes the leases whose name starts with `$1` (as in [`LIVE_LEASES`]) and that
/// expired at or before `$2`.
pub const DELETE_EXPIRED_LEASES: &str = "DELETE FROM leases \
     WHERE substr(name, 1, length($1)) = $1 AND expires_us <= $2";

/// Stores a shared secret unless one of that name exists. `$1` name, `$2` value (hex),
/// `$3` time.
pub const INSERT_SHARED_SECRET: &str = "INSERT INTO shared_secrets (name, value_hex, created_us) \
     VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";

/// A shared secret by name.
pub const SHARED_SECRET: &str = "SELECT value_hex FROM shared_secrets WHERE name = $1";

/// A trivial statement, for readiness probes.
pub const PING: &str = "SELECT 1";
