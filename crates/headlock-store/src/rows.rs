//! Between domain records and rows: ids as hex text, times as unix microseconds, enums
//! by their API spelling, lists as JSON text, byte strings as hex text.
//!
//! Reading is defensive: a row that does not decode (an unknown enum spelling, a bad id)
//! is reported as [`StoreError::Backend`] naming the table, column and row, never with
//! the value when the column holds a secret.

use crate::db::Row;
use headlock_core::StoreError;
use headlock_core::model::{
    AuditEvent, AuthMechanism, BackupConfig, BackupStatus, ChunkId, ChunkLocation, Cluster,
    ClusterType, DataKeyRecord, Group, IntentPhase, KeyIntent, MasterKeyRecord, RestoreJob, Role,
    RoleAssignment, RotationType, SnapshotKind, SnapshotRecord, User,
};
use headlock_core::model::{ReencryptionJob, ReencryptionStatus};
use headlock_core::store::Lease;
use headlock_core::{KmipUid, ObjectId};
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// A time as unix microseconds (sub-microsecond digits are dropped, rounding down).
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos().div_euclid(1000);
    // `time` without its `large-dates` feature stops at year 9999, well inside i64
    // microseconds; saturate rather than wrap should that ever change.
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// `micros` rounded: what a time reads back as after a store round trip.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    from_micros_lossy(micros(t)).unwrap_or(t)
}

fn from_micros_lossy(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
}

/// Hex text of an id.
pub(crate) fn id_text(id: ObjectId) -> String {
    id.to_string()
}

/// Hex text of an optional id.
pub(crate) fn opt_id_text(id: Option<ObjectId>) -> Option<String> {
    id.map(id_text)
}

/// JSON text of a list of strings.
pub(crate) fn json_list(items: &[String]) -> String {
    // Serializing a slice of strings cannot fail.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// How a user's roles are stored: `[{"role": "GROUP_OWNER", "groupId": "..."}]`.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRole {
    role: String,
    #[serde(rename = "groupId", default, skip_serializing_if = "Option::is_none")]
    group_id: Option<ObjectId>,
}

/// JSON text of a user's roles.
pub(crate) fn roles_json(roles: &[RoleAssignment]) -> String {
    let stored: Vec<StoredRole> = roles
        .iter()
        .map(|r| StoredRole {
            role: r.role.as_str().to_owned(),
            group_id: r.group_id,
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_owned())
}

/// Hex text of a secret byte string, wiped from memory when dropped.
pub(crate) fn secret_hex(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(hex::encode(bytes))
}

/// Reads the columns of one row, naming the table and row in every error.
pub(crate) struct RowReader<'r> {
    row: &'r Row,
    table: &'static str,
    key: String,
}

impl<'r> RowReader<'r> {
    /// A reader for a row of `table`; `key_column` names the row in errors.
    pub(crate) fn new(row: &'r Row, table: &'static str, key_column: &'static str) -> Self {
        let key = row.try_get::<String>(key_column).unwrap_or_else(|_| {
            row.try_get::<i64>(key_column)
                .map(|n| n.to_string())
                .unwrap_or_default()
        });
        RowReader { row, table, key }
    }

    fn corrupt(&self, column: &str, what: &str) -> StoreError {
        StoreError::Backend(format!(
            "row {} of table {}: column {column}: {what}",
            self.key, self.table
        ))
    }

    pub(crate) fn text(&self, column: &'static str) -> Result<String, StoreError> {
        self.row
            .try_get::<String>(column)
            .map_err(|e| self.corrupt(column, &e.to_string()))
    }

    pub(crate) fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.row
            .try_get::<Option<String>>(column)
            .map_err(|e| self.corrupt(column, &e.to_string()))
    }

    /// A KMIP uid, kept as TEXT.
    pub(crate) fn uid(&self, column: &'static str) -> Result<KmipUid, StoreError> {
        self.text(column).map(KmipUid::new)
    }

    /// A KMIP uid or NULL.
    pub(crate) fn opt_uid(&self, column: &'static str) -> Result<Option<KmipUid>, StoreError> {
        Ok(self.opt_text(column)?.map(KmipUid::new))
    }

    pub(crate) fn int(&self, column: &'static str) -> Result<i64, StoreError> {
        self.row
            .try_get::<i64>(column)
            .map_err(|e| self.corrupt(column, &e.to_string()))
    }

    /// A count or size: a non-negative integer that fits `T`.
    pub(crate) fn unsigned<T: TryFrom<i64>>(&self, column: &'static str) -> Result<T, StoreError> {
        let n = self.int(column)?;
        T::try_from(n).map_err(|_| self.corrupt(column, &format!("{n} is out of range")))
    }

    /// A chunk id stored as 64 hex digits.
    pub(crate) fn chunk_id(&self, column: &'static str) -> Result<ChunkId, StoreError> {
        let text = self.text(column)?;
        text.parse()
            .map_err(|_| self.corrupt(column, "not a chunk id of 64 hex digits"))
    }

    pub(crate) fn boolean(&self, column: &'static str) -> Result<bool, StoreError> {
        self.row
            .try_get::<bool>(column)
            .map_err(|e| self.corrupt(column, &e.to_string()))
    }

    pub(crate) fn id(&self, column: &'static str) -> Result<ObjectId, StoreError> {
        let text = self.text(column)?;
        text.parse()
            .map_err(|_| self.corrupt(column, "not an id of 24 hex digits"))
    }

    pub(crate) fn opt_id(&self, column: &'static str) -> Result<Option<ObjectId>, StoreError> {
        match self.opt_text(column)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(column, "not an id of 24 hex digits")),
        }
    }

    pub(crate) fn time(&self, column: &'static str) -> Result<OffsetDateTime, StoreError> {
        let us = self.int(column)?;
        from_micros_lossy(us).ok_or_else(|| self.corrupt(column, "time out of range"))
    }

    pub(crate) fn opt_time(
        &self,
        column: &'static str,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let us = self
            .row
            .try_get::<Option<i64>>(column)
            .map_err(|e| self.corrupt(column, &e.to_string()))?;
        us.map(|us| from_micros_lossy(us).ok_or_else(|| self.corrupt(column, "time out of range")))
            .transpose()
    }

    /// A wire enum, by its spelling.
    pub(crate) fn spelled<T>(
        &self,
        column: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let text = self.text(column)?;
        parse(&text).ok_or_else(|| self.corrupt(column, &format!("unknown value {text:?}")))
    }

    /// Bytes stored as hex. The value is never quoted in errors (it may be a secret).
    pub(crate) fn hex_bytes(&self, column: &'static str) -> Result<Vec<u8>, StoreError> {
        let text = Zeroizing::new(self.text(column)?);
        hex::decode(text.as_bytes()).map_err(|_| self.corrupt(column, "not hexadecimal"))
    }

    pub(crate) fn string_list(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        let text = self.text(column)?;
        serde_json::from_str(&text)
            .map_err(|e| self.corrupt(column, &format!("not a JSON list of strings: {e}")))
    }

    fn roles(&self, column: &'static str) -> Result<Vec<RoleAssignment>, StoreError> {
        let text = self.text(column)?;
        let stored: Vec<StoredRole> = serde_json::from_str(&text)
            .map_err(|e| self.corrupt(column, &format!("not a JSON role list: {e}")))?;
        stored
            .into_iter()
            .map(|s| {
                let role = Role::parse(&s.role)
                    .ok_or_else(|| self.corrupt(column, &format!("unknown role {:?}", s.role)))?;
                Ok(RoleAssignment {
                    role,
                    group_id: s.group_id,
                })
            })
            .collect()
    }
}

pub(crate) fn group(row: &Row) -> Result<Group, StoreError> {
    let r = RowReader::new(row, "project_groups", "id");
    Ok(Group {
        id: r.id("id")?,
        name: r.text("name")?,
        org_id: r.id("org_id")?,
        created: r.time("created_us")?,
    })
}

pub(crate) fn cluster(row: &Row) -> Result<Cluster, StoreError> {
    let r = RowReader::new(row, "clusters", "id");
    Ok(Cluster {
        id: r.id("id")?,
        group_id: r.id("group_id")?,
        cluster_name: r.text("cluster_name")?,
        type_name: r.spelled("type_name", ClusterType::parse)?,
        replica_set_name: r.opt_text("replica_set_name")?,
        shard_name: r.opt_text("shard_name")?,
        parent_cluster_id: r.opt_id("parent_cluster_id")?,
        created: r.time("created_us")?,
    })
}

pub(crate) fn backup_config(row: &Row) -> Result<BackupConfig, StoreError> {
    let r = RowReader::new(row, "backup_configs", "cluster_id");
    Ok(BackupConfig {
        group_id: r.id("group_id")?,
        cluster_id: r.id("cluster_id")?,
        status: r.spelled("status_name", BackupStatus::parse)?,
        encryption_enabled: r.boolean("encryption_enabled")?,
        storage_engine_name: r.text("storage_engine_name")?,
        ssl_enabled: r.boolean("ssl_enabled")?,
        excluded_namespaces: r.string_list("excluded_namespaces")?,
        included_namespaces: r.string_list("included_namespaces")?,
        auth_mechanism: r.spelled("auth_mechanism_name", AuthMechanism::parse)?,
    })
}

pub(crate) fn master_key(row: &Row) -> Result<MasterKeyRecord, StoreError> {
    let r = RowReader::new(row, "master_keys", "kmip_uid");
    Ok(MasterKeyRecord {
        cluster_id: r.id("cluster_id")?,
        kmip_uid: r.uid("kmip_uid")?,
        kmip_server: r.text("kmip_server")?,
        kmip_name: r.text("kmip_name")?,
        created: r.time("created_us")?,
        retired: r.opt_time("retired_us")?,
        rotation_type: r.spelled("rotation_type", RotationType::parse)?,
        requested_by: r.text("requested_by")?,
    })
}

pub(crate) fn data_key(row: &Row) -> Result<DataKeyRecord, StoreError> {
    let r = RowReader::new(row, "data_keys", "id");
    Ok(DataKeyRecord {
        id: r.id("id")?,
        cluster_id: r.id("cluster_id")?,
        wrapped: r.hex_bytes("wrapped_hex")?,
        master_key_uid: r.uid("master_key_uid")?,
        created: r.time("created_us")?,
    })
}

pub(crate) fn intent(row: &Row) -> Result<KeyIntent, StoreError> {
    let r = RowReader::new(row, "key_intents", "id");
    Ok(KeyIntent {
        id: r.id("id")?,
        cluster_id: r.id("cluster_id")?,
        key_name: r.text("key_name")?,
        previous_uid: r.opt_uid("previous_uid")?,
        new_uid: r.opt_uid("new_uid")?,
        phase: r.spelled("phase", IntentPhase::parse)?,
        rotation_type: r.spelled("rotation_type", RotationType::parse)?,
        requested_by: r.text("requested_by")?,
        created: r.time("created_us")?,
    })
}

pub(crate) fn user(row: &Row) -> Result<User, StoreError> {
    let r = RowReader::new(row, "users", "username");
    Ok(User {
        id: r.id("id")?,
        username: r.text("username")?,
        ha1_md5: r.hex_bytes("ha1_md5_hex")?,
        ha1_sha256: r.hex_bytes("ha1_sha256_hex")?,
        roles: r.roles("roles_json")?,
        access_list: r.string_list("access_list_json")?,
        created: r.time("created_us")?,
    })
}

/// An unsigned count or size as a `BIGINT` parameter; `Precondition` (naming `what`) if it
/// does not fit, which no real size does.
pub(crate) fn bigint<T: Copy + std::fmt::Display + TryInto<i64>>(
    n: T,
    what: &str,
) -> Result<i64, StoreError> {
    n.try_into().map_err(|_| {
        StoreError::Precondition(format!("{what} is {n}, more than a database integer holds"))
    })
}

pub(crate) fn snapshot(row: &Row) -> Result<SnapshotRecord, StoreError> {
    let r = RowReader::new(row, "snapshots", "id");
    Ok(SnapshotRecord {
        id: r.id("id")?,
        group_id: r.id("group_id")?,
        cluster_id: r.id("cluster_id")?,
        created: r.time("created_us")?,
        kind: r.spelled("kind", SnapshotKind::parse)?,
        data_size_bytes: r.unsigned("data_size_bytes")?,
        stored_size_bytes: r.unsigned("stored_size_bytes")?,
        file_size_bytes: r.unsigned("file_size_bytes")?,
        expires: r.opt_time("expires_us")?,
        do_not_delete: r.boolean("do_not_delete")?,
        data_key_id: r.id("data_key_id")?,
    })
}

pub(crate) fn chunk_location(row: &Row) -> Result<ChunkLocation, StoreError> {
    let r = RowReader::new(row, "chunks", "chunk_id");
    Ok(ChunkLocation {
        cluster_id: r.id("cluster_id")?,
        chunk_id: r.chunk_id("chunk_id")?,
        pack_id: r.id("pack_id")?,
        offset: r.unsigned("record_offset")?,
        length: r.unsigned("record_length")?,
        plaintext_length: r.unsigned("plaintext_length")?,
        stored_by: r.id("stored_by")?,
    })
}

pub(crate) fn restore_job(row: &Row) -> Result<RestoreJob, StoreError> {
    let r = RowReader::new(row, "restore_jobs", "id");
    Ok(RestoreJob {
        id: r.id("id")?,
        group_id: r.id("group_id")?,
        cluster_id: r.id("cluster_id")?,
        snapshot_id: r.id("snapshot_id")?,
        created: r.time("created_us")?,
        expires: r.time("expires_us")?,
        token_sha256: r.hex_bytes("token_sha256")?,
        max_downloads: r.unsigned("max_downloads")?,
        downloads: r.unsigned("downloads")?,
        requested_by: r.text("requested_by")?,
    })
}

pub(crate) fn reencryption_job(row: &Row) -> Result<ReencryptionJob, StoreError> {
    let r = RowReader::new(row, "reencryption_jobs", "id");
    Ok(ReencryptionJob {
        id: r.id("id")?,
        group_id: r.id("group_id")?,
        cluster_id: r.id("cluster_id")?,
        new_data_key_id: r.id("new_data_key_id")?,
        status: r.spelled("status", ReencryptionStatus::parse)?,
        created: r.time("created_us")?,
        finished: r.opt_time("finished_us")?,
        snapshots_total: r.unsigned("snapshots_total")?,
        snapshots_done: r.unsigned("snapshots_done")?,
        bytes_total: r.unsigned("bytes_total")?,
        bytes_done: r.unsigned("bytes_done")?,
        requested_by: r.text("requested_by")?,
        error: r.opt_text("error")?,
    })
}

pub(crate) fn lease(row: &Row) -> Result<Lease, StoreError> {
    let r = RowReader::new(row, "leases", "name");
    Ok(Lease {
        name: r.text("name")?,
        holder: r.text("holder")?,
        expires: r.time("expires_us")?,
    })
}

/// An audit row: the event and its place in the chain.
pub(crate) struct AuditRow {
    pub(crate) seq: i64,
    pub(crate) event: AuditEvent,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

pub(crate) fn audit(row: &Row) -> Result<AuditRow, StoreError> {
    let r = RowReader::new(row, "audit_events", "id");
    Ok(AuditRow {
        seq: r.int("seq")?,
        event: AuditEvent {
            id: r.id("id")?,
            created: r.time("created_us")?,
            event_type: r.text("event_type")?,
            group_id: r.opt_id("group_id")?,
            cluster_id: r.opt_id("cluster_id")?,
            username: r.opt_text("username")?,
            remote_address: r.opt_text("remote_address")?,
            outcome: r.text("outcome")?,
            old_key_uid: r.opt_uid("old_key_uid")?,
            new_key_uid: r.opt_uid("new_key_uid")?,
            detail: r.opt_text("detail")?,
        },
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip_drops_only_sub_microseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(micros(t), 1_700_000_000_123_456);
        assert_eq!(
            truncate_to_micros(t).unix_timestamp_nanos(),
            1_700_000_000_123_456_000
        );
        let before_epoch = OffsetDateTime::from_unix_timestamp_nanos(-1_500).unwrap();
        assert_eq!(micros(before_epoch), -2);
    }

    #[test]
    fn roles_json_round_trips() {
        let g: ObjectId = "5196d3628d022db4cbc26d9e".parse().unwrap();
        let text = roles_json(&[
            RoleAssignment {
                role: Role::GlobalOwner,
                group_id: None,
            },
            RoleAssignment {
                role: Role::GroupReadOnly,
                group_id: Some(g),
            },
        ]);
        assert_eq!(
            text,
            r#"[{"role":"GLOBAL_OWNER"},{"role":"GROUP_READ_ONLY","groupId":"5196d3628d022db4cbc26d9e"}]"#
        );
    }
}
