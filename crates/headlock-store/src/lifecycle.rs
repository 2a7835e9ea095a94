//! The master key lifecycle records (`migrations/0004_key_lifecycle.sql`): each
//! cluster's lifecycle settings, the key state watch's findings, and the fates of
//! retired keys. The statements follow the rules of `queries.rs` (only SQL that SQLite
//! and PostgreSQL share); they live here, beside the methods that run them, so that the
//! lifecycle can be read in one place.
//!
//! The one decision that must not race is the destruction claim
//! ([`KeyLifecycleStore::claim_key_destruction`]): it
//! takes the cluster's row lock (PostgreSQL; on SQLite write transactions are serial),
//! which key changes and snapshot commits of the cluster also take or conflict with, and
//! then checks, in the same transaction that records the claim, that the key is retired,
//! has no fate yet and is referenced by no data key and no snapshot.

use async_trait::async_trait;
use headlock_core::model::{
    AuditEvent, Cluster, DestructionClaim, KeyLifecycleSettings, KeyStateError, RetiredKeyFate,
    RetiredKeyRecord,
};
use headlock_core::store::KeyLifecycleStore;
use headlock_core::{KmipUid, ObjectId, StoreError};
use time::OffsetDateTime;

use crate::audit::append_audit_in;
use crate::db::{Row, Tx, stmt};
use crate::error::{classify, ctx};
use crate::queries as q;
use crate::rows::{self, RowReader, id_text, micros};
use crate::{SqlStore, retrying, to_u64};

/// A cluster's settings. `$1` cluster.
const LIFECYCLE: &str = "SELECT rotation_period_days, retired_key_destroy_after_days \
     FROM key_lifecycle WHERE cluster_id = $1";

/// Writes a cluster's settings. `$1` cluster, `$2` period, `$3` grace.
const UPSERT_LIFECYCLE: &str = "INSERT INTO key_lifecycle \
     (cluster_id, rotation_period_days, retired_key_destroy_after_days) VALUES ($1, $2, $3) \
     ON CONFLICT (cluster_id) DO UPDATE SET rotation_period_days = excluded.rotation_period_days, \
     retired_key_destroy_after_days = excluded.retired_key_destroy_after_days";

/// Every encrypted data-bearing cluster with its settings (0 when it has no row).
const ENCRYPTED_CLUSTERS: &str = "SELECT c.id, c.group_id, c.cluster_name, c.type_name, \
     c.replica_set_name, c.shard_name, c.parent_cluster_id, c.created_us, \
     COALESCE(l.rotation_period_days, 0) AS rotation_period_days, \
     COALESCE(l.retired_key_destroy_after_days, 0) AS retired_key_destroy_after_days \
     FROM clusters c JOIN backup_configs b ON b.cluster_id = c.id \
     LEFT JOIN key_lifecycle l ON l.cluster_id = c.id \
     WHERE b.encryption_enabled = TRUE AND c.type_name <> 'SHARDED_REPLICA_SET' ORDER BY c.id";

/// Records a finding unless the same one is recorded. `$1` cluster, `$2` uid, `$3`
/// message, `$4` time.
const UPSERT_KEY_ERROR: &str = "INSERT INTO key_state_errors \
     (cluster_id, kmip_uid, message, since_us) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (cluster_id) DO UPDATE SET kmip_uid = excluded.kmip_uid, \
     message = excluded.message, since_us = excluded.since_us \
     WHERE key_state_errors.kmip_uid <> excluded.kmip_uid \
     OR key_state_errors.message <> excluded.message";

/// Clears a finding. `$1` cluster.
const DELETE_KEY_ERROR: &str = "DELETE FROM key_state_errors WHERE cluster_id = $1";

/// A cluster's finding. `$1` cluster.
const KEY_ERROR: &str =
    "SELECT cluster_id, kmip_uid, message, since_us FROM key_state_errors WHERE cluster_id = $1";

/// A cluster's retired key fates. `$1` cluster.
const FATES: &str = "SELECT cluster_id, kmip_uid, fate, changed_us FROM retired_key_fates \
     WHERE cluster_id = $1 ORDER BY kmip_uid";

/// One key's fate. `$1` cluster, `$2` uid.
const FATE: &str = "SELECT fate FROM retired_key_fates WHERE cluster_id = $1 AND kmip_uid = $2";

/// Whether a key of the cluster is retired: one row (its retired_us) if the key exists.
const KEY_RETIRED: &str =
    "SELECT retired_us FROM master_keys WHERE cluster_id = $1 AND kmip_uid = $2";

/// Data keys a master key wraps. `$1` cluster, `$2` uid.
const COUNT_WRAPPED: &str =
    "SELECT COUNT(*) FROM data_keys WHERE cluster_id = $1 AND master_key_uid = $2";

/// Snapshots whose data key a master key wraps. `$1` cluster, `$2` uid.
const COUNT_SNAPSHOTS_WRAPPED: &str = "SELECT COUNT(*) FROM snapshots s \
     JOIN data_keys d ON d.id = s.data_key_id \
     WHERE s.cluster_id = $1 AND d.cluster_id = $1 AND d.master_key_uid = $2";

/// Records a fate if the key has none. `$1` cluster, `$2` uid, `$3` fate, `$4` time.
const INSERT_FATE: &str = "INSERT INTO retired_key_fates (cluster_id, kmip_uid, fate, changed_us) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (cluster_id, kmip_uid) DO NOTHING";

/// `Destroying` to `Destroyed`. `$1` cluster, `$2` uid, `$3` time.
const FATE_DESTROYED: &str = "UPDATE retired_key_fates SET fate = 'DESTROYED', changed_us = $3 \
     WHERE cluster_id = $1 AND kmip_uid = $2 AND fate = 'DESTROYING'";

/// `Destroying` back to no fate. `$1` cluster, `$2` uid.
const FATE_RELEASED: &str = "DELETE FROM retired_key_fates \
     WHERE cluster_id = $1 AND kmip_uid = $2 AND fate = 'DESTROYING'";

/// Deletes the lifecycle settings of a cluster and its parts (cluster deletion).
pub(crate) const DELETE_TREE_LIFECYCLE: &str = "DELETE FROM key_lifecycle WHERE cluster_id IN \
     (SELECT id FROM clusters WHERE id = $1 OR parent_cluster_id = $1)";

/// Deletes the key state findings of a cluster and its parts (cluster deletion).
pub(crate) const DELETE_TREE_KEY_ERRORS: &str = "DELETE FROM key_state_errors WHERE cluster_id IN \
     (SELECT id FROM clusters WHERE id = $1 OR parent_cluster_id = $1)";

/// Deletes the retired key fates of a cluster and its parts (cluster deletion).
pub(crate) const DELETE_TREE_FATES: &str = "DELETE FROM retired_key_fates WHERE cluster_id IN \
     (SELECT id FROM clusters WHERE id = $1 OR parent_cluster_id = $1)";

fn days(r: &RowReader<'_>, column: &'static str) -> Result<u32, StoreError> {
    r.unsigned(column)
}

fn settings(row: &Row) -> Result<KeyLifecycleSettings, StoreError> {
    let r = RowReader::new(row, "key_lifecycle", "rotation_period_days");
    Ok(KeyLifecycleSettings {
        rotation_period_days: days(&r, "rotation_period_days")?,
        retired_key_destroy_after_days: days(&r, "retired_key_destroy_after_days")?,
    })
}

fn key_error(row: &Row) -> Result<KeyStateError, StoreError> {
    let r = RowReader::new(row, "key_state_errors", "cluster_id");
    Ok(KeyStateError {
        cluster_id: r.id("cluster_id")?,
        kmip_uid: r.uid("kmip_uid")?,
        message: r.text("message")?,
        since: r.time("since_us")?,
    })
}

fn fate(row: &Row) -> Result<RetiredKeyRecord, StoreError> {
    let r = RowReader::new(row, "retired_key_fates", "kmip_uid");
    Ok(RetiredKeyRecord {
        cluster_id: r.id("cluster_id")?,
        kmip_uid: r.uid("kmip_uid")?,
        fate: r.spelled("fate", RetiredKeyFate::parse)?,
        changed: r.time("changed_us")?,
    })
}

/// The longest KMIP uid or finding message accepted, in bytes.
const MAX_TEXT: usize = 4096;

fn check_text(what: &str, text: &str, op: &str) -> Result<(), StoreError> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(StoreError::Precondition(format!(
            "{op}: {what} is 1 to {MAX_TEXT} bytes, not {}",
            text.len()
        )));
    }
    Ok(())
}

/// Whether `uid` is a key of `cluster` and, if so, whether it is retired, read in `tx`.
async fn key_retired(
    tx: &mut Tx,
    cluster: ObjectId,
    uid: &str,
    op: &str,
) -> Result<Option<bool>, StoreError> {
    let row = stmt(KEY_RETIRED)
        .bind(id_text(cluster))
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ctx(op))?;
    match row {
        None => Ok(None),
        Some(row) => {
            let retired: Option<i64> = row.try_get("retired_us").map_err(ctx(op))?;
            Ok(Some(retired.is_some()))
        }
    }
}

/// The fate of a key, read in `tx`.
async fn fate_in(
    tx: &mut Tx,
    cluster: ObjectId,
    uid: &str,
    op: &str,
) -> Result<Option<RetiredKeyFate>, StoreError> {
    let row = stmt(FATE)
        .bind(id_text(cluster))
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ctx(op))?;
    row.map(|row| {
        RowReader::new(&row, "retired_key_fates", "kmip_uid").spelled("fate", RetiredKeyFate::parse)
    })
    .transpose()
}

#[async_trait]
impl KeyLifecycleStore for SqlStore {
    async fn key_lifecycle(&self, cluster: ObjectId) -> Result<KeyLifecycleSettings, StoreError> {
        let row = stmt(LIFECYCLE)
            .bind(id_text(cluster))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| {
                classify(
                    &format!("reading the key lifecycle of cluster {cluster}"),
                    e,
                )
            })?;
        Ok(row.as_ref().map(settings).transpose()?.unwrap_or_default())
    }

    async fn set_key_lifecycles(
        &self,
        all: &[(ObjectId, KeyLifecycleSettings)],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        retrying("set_key_lifecycles", || async move {
            let op = "writing key lifecycle settings";
            let mut tx = self.begin_write(op).await?;
            let mut ordered: Vec<&(ObjectId, KeyLifecycleSettings)> = all.iter().collect();
            // One lock order on PostgreSQL, as for backup configs.
            ordered.sort_by_key(|(c, _)| *c);
            for (cluster, s) in ordered {
                stmt(UPSERT_LIFECYCLE)
                    .bind(id_text(*cluster))
                    .bind(i64::from(s.rotation_period_days))
                    .bind(i64::from(s.retired_key_destroy_after_days))
                    .execute(&mut tx)
                    .await
                    .map_err(|e| classify(&format!("{op} of cluster {cluster}"), e))?;
            }
            for event in audit {
                append_audit_in(&mut tx, event).await?;
            }
            tx.commit().await.map_err(ctx(op))
        })
        .await
    }

    async fn encrypted_clusters(&self) -> Result<Vec<(Cluster, KeyLifecycleSettings)>, StoreError> {
        let found = stmt(ENCRYPTED_CLUSTERS)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx("listing encrypted clusters"))?;
        found
            .iter()
            .map(|row| Ok((rows::cluster(row)?, settings(row)?)))
            .collect()
    }

    async fn set_key_state_error(&self, error: &KeyStateError) -> Result<bool, StoreError> {
        let op = format!(
            "recording a key state error of cluster {}",
            error.cluster_id
        );
        check_text("a KMIP uid", error.kmip_uid.as_str(), &op)?;
        check_text("a message", &error.message, &op)?;
        let n = stmt(UPSERT_KEY_ERROR)
            .bind(id_text(error.cluster_id))
            .bind(&error.kmip_uid)
            .bind(&error.message)
            .bind(micros(error.since))
            .execute(&self.pool)
            .await
            .map_err(|e| classify(&op, e))?;
        Ok(n > 0)
    }

    async fn clear_key_state_error(&self, cluster: ObjectId) -> Result<bool, StoreError> {
        let n = stmt(DELETE_KEY_ERROR)
            .bind(id_text(cluster))
            .execute(&self.pool)
            .await
            .map_err(ctx(&format!(
                "clearing the key state error of cluster {cluster}"
            )))?;
        Ok(n > 0)
    }

    async fn key_state_error(
        &self,
        cluster: ObjectId,
    ) -> Result<Option<KeyStateError>, StoreError> {
        let row = stmt(KEY_ERROR)
            .bind(id_text(cluster))
            .fetch_optional(&self.pool)
            .await
            .map_err(ctx(&format!(
                "reading the key state error of cluster {cluster}"
            )))?;
        row.as_ref().map(key_error).transpose()
    }

    async fn retired_key_fates(
        &self,
        cluster: ObjectId,
    ) -> Result<Vec<RetiredKeyRecord>, StoreError> {
        let found = stmt(FATES)
            .bind(id_text(cluster))
            .fetch_all(&self.pool)
            .await
            .map_err(ctx(&format!(
                "reading the retired key fates of cluster {cluster}"
            )))?;
        found.iter().map(fate).collect()
    }

    async fn claim_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &KmipUid,
        now: OffsetDateTime,
    ) -> Result<DestructionClaim, StoreError> {
        retrying("claim_key_destruction", || async move {
            let op = format!("claiming the destruction of master key {uid:?} of cluster {cluster}");
            check_text("a KMIP uid", uid.as_str(), &op)?;
            let mut tx = self.begin_write(&op).await?;
            // PostgreSQL: queues behind (and holds off) key changes and snapshot commits of
            // the cluster, so the counts below are the committed truth until this commits.
            if !SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await? {
                return Ok(DestructionClaim::NotRetired);
            }
            if key_retired(&mut tx, cluster, uid.as_str(), &op).await? != Some(true) {
                return Ok(DestructionClaim::NotRetired);
            }
            if let Some(f) = fate_in(&mut tx, cluster, uid.as_str(), &op).await? {
                return Ok(DestructionClaim::Decided(f));
            }
            let data_keys = stmt(COUNT_WRAPPED)
                .bind(id_text(cluster))
                .bind(uid)
                .fetch_i64(&mut tx)
                .await
                .map_err(ctx(&op))?;
            let snapshots = stmt(COUNT_SNAPSHOTS_WRAPPED)
                .bind(id_text(cluster))
                .bind(uid)
                .fetch_i64(&mut tx)
                .await
                .map_err(ctx(&op))?;
            if data_keys > 0 || snapshots > 0 {
                return Ok(DestructionClaim::Referenced {
                    data_keys: to_u64(data_keys),
                    snapshots: to_u64(snapshots),
                });
            }
            stmt(INSERT_FATE)
                .bind(id_text(cluster))
                .bind(uid)
                .bind(RetiredKeyFate::Destroying.as_str())
                .bind(micros(now))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            tx.commit().await.map_err(ctx(&op))?;
            Ok(DestructionClaim::Claimed)
        })
        .await
    }

    async fn finish_key_destruction(
        &self,
        cluster: ObjectId,
        uid: &KmipUid,
        at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        let op = format!("finishing the destruction of master key {uid:?} of cluster {cluster}");
        let n = match at {
            Some(at) => stmt(FATE_DESTROYED)
                .bind(id_text(cluster))
                .bind(uid)
                .bind(micros(at))
                .execute(&self.pool)
                .await
                .map_err(ctx(&op))?,
            None => stmt(FATE_RELEASED)
                .bind(id_text(cluster))
                .bind(uid)
                .execute(&self.pool)
                .await
                .map_err(ctx(&op))?,
        };
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "{op}: the key is not being destroyed"
            )));
        }
        Ok(())
    }

    async fn keep_retired_key(
        &self,
        cluster: ObjectId,
        uid: &KmipUid,
        now: OffsetDateTime,
    ) -> Result<RetiredKeyFate, StoreError> {
        retrying("keep_retired_key", || async move {
            let op =
                format!("cancelling the destruction of master key {uid:?} of cluster {cluster}");
            check_text("a KMIP uid", uid.as_str(), &op)?;
            let mut tx = self.begin_write(&op).await?;
            SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await?;
            match key_retired(&mut tx, cluster, uid.as_str(), &op).await? {
                None => return Err(StoreError::NotFound(format!("{op}: no such key"))),
                Some(false) => {
                    return Err(StoreError::Precondition(format!(
                        "{op}: it is the current key"
                    )));
                }
                Some(true) => {}
            }
            stmt(INSERT_FATE)
                .bind(id_text(cluster))
                .bind(uid)
                .bind(RetiredKeyFate::Kept.as_str())
                .bind(micros(now))
                .execute(&mut tx)
                .await
                .map_err(ctx(&op))?;
            let fate = fate_in(&mut tx, cluster, uid.as_str(), &op)
                .await?
                .ok_or_else(|| StoreError::Backend(format!("{op}: the fate was not recorded")))?;
            tx.commit().await.map_err(ctx(&op))?;
            Ok(fate)
        })
        .await
    }
}
