//! [`KeyStore`] on SQL: master and data key records, key-change intents, and the key
//! change: one transaction that retires the current key (at the caller's time), records
//! the new one, replaces the data keys, writes configs, commits the intent and appends
//! the audit event, after checking under the cluster's row lock that the current key is
//! still the one the change started from.

use async_trait::async_trait;
use headlock_core::model::{DataKeyRecord, IntentPhase, KeyIntent, MasterKeyRecord};
use headlock_core::store::{KeyChange, KeyStore};
use headlock_core::{KmipUid, ObjectId, StoreConflict as Conflict, StoreError};

use crate::audit::append_audit_in;
use crate::db::stmt;
use crate::error::{classify, ctx, ctx_unique};
use crate::groups::update_configs_in;
use crate::leases::renew_lease_in;
use crate::queries as q;
use crate::rows::{self, id_text, micros};
use crate::{SqlStore, retrying};

#[async_trait]
impl KeyStore for SqlStore {
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
        let op = format!(
            "inserting intent {} for cluster {}",
            intent.id, intent.cluster_id
        );
        let inserted = stmt(q::INSERT_INTENT)
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
            .map_err(ctx_unique(&op, Conflict::KeyChangeInFlight))?;
        if inserted == 0 {
            return Err(StoreError::Precondition(format!(
                "{op}: the current master key is not {:?}, the one the change starts from",
                intent.previous_uid
            )));
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
        retrying("commit_key_change", || async move {
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

            let mut tx = self.begin_write(&op).await?;
            if !SqlStore::lock_cluster(&mut tx, q::CLUSTER_LOCK, cluster, &op).await? {
                return Err(StoreError::NotFound(format!("{op}: no such cluster")));
            }
            if let Some(lease) = &change.lease
                && !renew_lease_in(&mut tx, lease, &op).await?
            {
                return Err(StoreError::Precondition(format!(
                    "{op}: lease {:?} is no longer held by {:?}",
                    lease.name, lease.holder
                )));
            }

            // The precondition: the current key is the one the change started from. It
            // is retired in the same statement; a wrong one is restored by the rollback.
            let retired = stmt(q::RETIRE_CURRENT_KEY)
                .bind(id_text(cluster))
                .bind(micros(change.retired_at))
                .fetch_optional(&mut tx)
                .await
                .map_err(ctx(&op))?;
            let current = match &retired {
                Some(row) => {
                    let uid: String = row.try_get("kmip_uid").map_err(ctx(&op))?;
                    let generation: i64 = row.try_get("generation").map_err(ctx(&op))?;
                    Some((uid, generation))
                }
                None => None,
            };
            let current_uid = current.as_ref().map(|(uid, _)| uid.as_str());
            if current_uid != change.expected_current.as_ref().map(KmipUid::as_str) {
                return Err(StoreError::Precondition(format!(
                    "{op}: the current master key is {current_uid:?}, not the expected {:?}",
                    change.expected_current
                )));
            }

            // Only a key change inserts keys, each above the one it retires: the current
            // key has the highest generation (the primary key refuses a clash).
            let generation = match &current {
                Some((_, generation)) => generation + 1,
                None => stmt(q::NEXT_GENERATION)
                    .bind(id_text(cluster))
                    .fetch_i64(&mut tx)
                    .await
                    .map_err(ctx(&op))?,
            };
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

            // The data keys are replaced; the ones deleted are those stored now, under
            // the cluster's lock: a key the change read may have been deleted since (a
            // re-encryption job's end), and must not come back. (A refusal below rolls
            // the deletion back with the transaction.)
            let stored: Vec<String> = stmt(q::DELETE_DATA_KEYS)
                .bind(id_text(cluster))
                .fetch_texts(&mut tx)
                .await
                .map_err(ctx(&op))?;
            let read: Option<Vec<String>> = change
                .data_keys_read
                .as_ref()
                .map(|ids| ids.iter().map(|id| id_text(*id)).collect());
            if let Some(read) = &read
                && let Some(unread) = stored.iter().find(|id| !read.contains(id))
            {
                return Err(StoreError::Precondition(format!(
                    "{op}: data key {unread} was stored after the change read the cluster's \
                     data keys"
                )));
            }
            let deleted_since = |id: &String| {
                read.as_ref()
                    .is_some_and(|read| read.contains(id) && !stored.contains(id))
            };
            for dk in &change.data_keys {
                if deleted_since(&id_text(dk.id)) {
                    continue;
                }
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
        })
        .await
    }
}
