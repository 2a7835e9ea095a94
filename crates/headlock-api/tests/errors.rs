//! Every service error, one of each variant, against the error table of `docs/api.md`:
//! the `errorCode` and `parameters` each variant answers, and the status the table gives
//! that code. A variant added to `ServiceError` does not compile here until it has a row;
//! a row whose status drifts from the documentation fails.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::http::header;
use headlock_api::ApiError;
use headlock_core::model::BackupStatus;
use headlock_core::{KeyManagerError, KmipUid, ObjectId, StoreError};
use headlock_service::ServiceError;
use headlock_service::error::{
    BadRequest, Conflict, Denied, Duplicated, Internal, NotFound, RequestedId, Unavailable,
};

/// Names every variant, matched exhaustively: `ALL` lists them, `variant` says which one an
/// error is. A new variant breaks this match; a variant with no row below fails the test.
macro_rules! variants {
    ($($name:literal => $pat:pat),+ $(,)?) => {
        const ALL: &[&str] = &[$($name),+];

        fn variant(e: &ServiceError) -> &'static str {
            match e {
                $($pat => $name),+
            }
        }
    };
}

variants! {
    "NotFound::InvalidGroupId" => ServiceError::NotFound(NotFound::InvalidGroupId(_)),
    "NotFound::Group" => ServiceError::NotFound(NotFound::Group(_)),
    "NotFound::GroupName" => ServiceError::NotFound(NotFound::GroupName(_)),
    "NotFound::InvalidClusterId" => ServiceError::NotFound(NotFound::InvalidClusterId(_)),
    "NotFound::Cluster" => ServiceError::NotFound(NotFound::Cluster { .. }),
    "NotFound::BackupConfig" => ServiceError::NotFound(NotFound::BackupConfig { .. }),
    "NotFound::Event" => ServiceError::NotFound(NotFound::Event(_)),
    "NotFound::Snapshot" => ServiceError::NotFound(NotFound::Snapshot(_)),
    "NotFound::RestoreJob" => ServiceError::NotFound(NotFound::RestoreJob(_)),
    "NotFound::ReencryptionJob" => ServiceError::NotFound(NotFound::ReencryptionJob(_)),
    "NotFound::User" => ServiceError::NotFound(NotFound::User(_)),
    "NotFound::MasterKey" => ServiceError::NotFound(NotFound::MasterKey(_)),
    "NotFound::UploadSession" => ServiceError::NotFound(NotFound::UploadSession(_)),
    "NotFound::RestoreLinkGone" => ServiceError::NotFound(NotFound::RestoreLinkGone),
    "BadRequest::InvalidInput" => ServiceError::BadRequest(BadRequest::InvalidInput(_)),
    "BadRequest::UploadInterrupted" => ServiceError::BadRequest(BadRequest::UploadInterrupted(_)),
    "BadRequest::ChunkIdMismatch" => ServiceError::BadRequest(BadRequest::ChunkIdMismatch(_)),
    "Denied::NotInGroup" => ServiceError::Denied(Denied::NotInGroup),
    "Denied::Forbidden" => ServiceError::Denied(Denied::Forbidden),
    "Conflict::Duplicate" => ServiceError::Conflict(Conflict::Duplicate { .. }),
    "Conflict::CannotModifyShardBackupConfig" =>
        ServiceError::Conflict(Conflict::CannotModifyShardBackupConfig { .. }),
    "Conflict::EncryptionDisabledBackup" =>
        ServiceError::Conflict(Conflict::EncryptionDisabledBackup(_)),
    "Conflict::EncryptionDisabledRotate" =>
        ServiceError::Conflict(Conflict::EncryptionDisabledRotate(_)),
    "Conflict::EncryptionDisabledGet" => ServiceError::Conflict(Conflict::EncryptionDisabledGet(_)),
    "Conflict::EncryptionHasSnapshots" =>
        ServiceError::Conflict(Conflict::EncryptionHasSnapshots(_)),
    "Conflict::SnapshotProtected" => ServiceError::Conflict(Conflict::SnapshotProtected(_)),
    "Conflict::InvalidStatusTransition" =>
        ServiceError::Conflict(Conflict::InvalidStatusTransition { .. }),
    "Conflict::KeyChangeInProgress" => ServiceError::Conflict(Conflict::KeyChangeInProgress(_)),
    "Conflict::CannotDeleteCluster" => ServiceError::Conflict(Conflict::CannotDeleteCluster(_)),
    "Conflict::EncryptionKeyNotActive" =>
        ServiceError::Conflict(Conflict::EncryptionKeyNotActive { .. }),
    "Conflict::CannotCancelKeyDestruction" =>
        ServiceError::Conflict(Conflict::CannotCancelKeyDestruction(_)),
    "Conflict::UploadSessionStale" => ServiceError::Conflict(Conflict::UploadSessionStale(_)),
    "Conflict::ChunksNotStored" => ServiceError::Conflict(Conflict::ChunksNotStored { .. }),
    "Unavailable::KeyManager" => ServiceError::Unavailable(Unavailable::KeyManager(_)),
    "Unavailable::Storage" => ServiceError::Unavailable(Unavailable::Storage(_)),
    "Unavailable::StorageFull" => ServiceError::Unavailable(Unavailable::StorageFull(_)),
    "Internal::Store" => ServiceError::Internal(Internal::Store(_)),
    "Internal::SnapshotDamaged" => ServiceError::Internal(Internal::SnapshotDamaged(_)),
    "Internal::Unexpected" => ServiceError::Internal(Internal::Unexpected(_)),
}

const G: &str = "5196e5b0e4b0fca9cc88334a";
const C: &str = "5f0c0ffee0c0ffee0c0ffee0";
const S: &str = "6b0c80caf83a636b78000000";

fn id(hex: &str) -> ObjectId {
    hex.parse().unwrap()
}

/// One of each variant: the error, its `errorCode`, its `parameters`.
fn rows() -> Vec<(ServiceError, &'static str, Vec<&'static str>)> {
    let status = |from, to| Conflict::InvalidStatusTransition { from, to }.into();
    vec![
        (
            NotFound::InvalidGroupId("nope".into()).into(),
            "INVALID_GROUP_ID",
            vec!["nope"],
        ),
        (NotFound::Group(id(G)).into(), "GROUP_NOT_FOUND", vec![G]),
        (
            NotFound::GroupName("ops".into()).into(),
            "GROUP_NOT_FOUND",
            vec!["ops"],
        ),
        (
            NotFound::InvalidClusterId("x".into()).into(),
            "INVALID_CLUSTER_ID",
            vec!["x"],
        ),
        (
            NotFound::Cluster {
                cluster: id(C),
                group: id(G),
            }
            .into(),
            "CLUSTER_NOT_FOUND",
            vec![C, G],
        ),
        (
            NotFound::BackupConfig {
                cluster: id(C),
                group: id(G),
            }
            .into(),
            "BACKUP_CONFIG_NOT_FOUND",
            vec![C, G],
        ),
        (
            NotFound::Event(id(S).into()).into(),
            "EVENT_NOT_FOUND",
            vec![S],
        ),
        (
            NotFound::Snapshot(RequestedId::Invalid("snap".into())).into(),
            "SNAPSHOT_NOT_FOUND",
            vec!["snap"],
        ),
        (
            NotFound::Snapshot(id(S).into()).into(),
            "SNAPSHOT_NOT_FOUND",
            vec![S],
        ),
        (
            NotFound::RestoreJob(id(S).into()).into(),
            "RESTORE_JOB_NOT_FOUND",
            vec![S],
        ),
        (
            NotFound::ReencryptionJob(RequestedId::Invalid("j".into())).into(),
            "REENCRYPTION_JOB_NOT_FOUND",
            vec!["j"],
        ),
        (
            NotFound::User("alice".into()).into(),
            "USER_NOT_FOUND",
            vec!["alice"],
        ),
        (
            NotFound::MasterKey(KmipUid::new("uid-7")).into(),
            "MASTER_KEY_NOT_FOUND",
            vec!["uid-7"],
        ),
        (
            NotFound::UploadSession(id(S).into()).into(),
            "UPLOAD_SESSION_NOT_FOUND",
            vec![S],
        ),
        (
            NotFound::RestoreLinkGone.into(),
            "RESTORE_LINK_EXPIRED",
            vec![],
        ),
        (
            BadRequest::InvalidInput("name is missing".into()).into(),
            "INVALID_ATTRIBUTE",
            vec![],
        ),
        (
            BadRequest::UploadInterrupted("cut".into()).into(),
            "UPLOAD_INTERRUPTED",
            vec![],
        ),
        (
            BadRequest::ChunkIdMismatch("ab".into()).into(),
            "CHUNK_ID_MISMATCH",
            vec!["ab"],
        ),
        (
            Conflict::UploadSessionStale(id(S)).into(),
            "UPLOAD_SESSION_STALE",
            vec![S],
        ),
        (
            Conflict::ChunksNotStored {
                first: "ab".into(),
                count: 2,
            }
            .into(),
            "CHUNKS_NOT_STORED",
            vec!["ab", "2"],
        ),
        (Denied::NotInGroup.into(), "NOT_IN_GROUP", vec![]),
        (Denied::Forbidden.into(), "USER_UNAUTHORIZED", vec![]),
        (
            Conflict::Duplicate {
                what: Duplicated::GroupName,
                message: "taken".into(),
            }
            .into(),
            "DUPLICATE_GROUP_NAME",
            vec![],
        ),
        (
            Conflict::Duplicate {
                what: Duplicated::ClusterName,
                message: "taken".into(),
            }
            .into(),
            "DUPLICATE_CLUSTER_NAME",
            vec![],
        ),
        (
            Conflict::Duplicate {
                what: Duplicated::Username,
                message: "taken".into(),
            }
            .into(),
            "DUPLICATE_USERNAME",
            vec![],
        ),
        (
            Conflict::CannotModifyShardBackupConfig {
                whole_cluster: id(C),
            }
            .into(),
            "CANNOT_MODIFY_SHARD_BACKUP_CONFIG",
            vec![C],
        ),
        (
            Conflict::EncryptionDisabledBackup(id(C)).into(),
            "CANNOT_BACKUP_ENCRYPTION_DISABLED",
            vec![C],
        ),
        (
            Conflict::EncryptionDisabledRotate(id(C)).into(),
            "CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED",
            vec![C],
        ),
        (
            Conflict::EncryptionDisabledGet(id(C)).into(),
            "CANNOT_GET_KEY_ENCRYPTION_DISABLED",
            vec![C],
        ),
        (
            Conflict::EncryptionHasSnapshots(id(C)).into(),
            "CANNOT_DISABLE_ENCRYPTION_SNAPSHOTS_EXIST",
            vec![C],
        ),
        (
            Conflict::SnapshotProtected(id(S)).into(),
            "CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE",
            vec![S],
        ),
        (
            status(BackupStatus::Stopped, BackupStatus::Started),
            "CANNOT_START_BACKUP_INVALID_STATE",
            vec![],
        ),
        (
            status(BackupStatus::Inactive, BackupStatus::Stopped),
            "CANNOT_STOP_BACKUP_INVALID_STATE",
            vec![],
        ),
        (
            status(BackupStatus::Started, BackupStatus::Terminating),
            "CANNOT_TERMINATE_BACKUP_INVALID_STATE",
            vec![],
        ),
        (
            status(BackupStatus::Started, BackupStatus::Inactive),
            "INVALID_ATTRIBUTE",
            vec![],
        ),
        (
            status(BackupStatus::Started, BackupStatus::Provisioning),
            "INVALID_ATTRIBUTE",
            vec![],
        ),
        (
            Conflict::KeyChangeInProgress(id(C)).into(),
            "KEY_CHANGE_IN_PROGRESS",
            vec![C],
        ),
        (
            Conflict::CannotDeleteCluster("has snapshots".into()).into(),
            "CANNOT_DELETE_CLUSTER",
            vec![],
        ),
        (
            Conflict::EncryptionKeyNotActive {
                cluster: id(C),
                detail: "key k is Deactivated.".into(),
            }
            .into(),
            "ENCRYPTION_KEY_NOT_ACTIVE",
            vec![C],
        ),
        (
            Conflict::CannotCancelKeyDestruction("already destroyed".into()).into(),
            "CANNOT_CANCEL_KEY_DESTRUCTION",
            vec![],
        ),
        (
            KeyManagerError::Unavailable {
                server: "kmip:5696".into(),
                reason: "refused".into(),
            }
            .into(),
            "KMIP_SERVER_UNAVAILABLE",
            vec![],
        ),
        (
            KeyManagerError::InvalidKey {
                uid: KmipUid::new("uid-7"),
                reason: "not AES".into(),
            }
            .into(),
            "KMIP_SERVER_UNAVAILABLE",
            vec![],
        ),
        (
            Unavailable::Storage("s3 said 500".into()).into(),
            "STORAGE_UNAVAILABLE",
            vec![],
        ),
        (
            Unavailable::StorageFull("packs/ab".into()).into(),
            "STORAGE_FULL",
            vec![],
        ),
        (
            StoreError::Backend("disk I/O error".into()).into(),
            "UNEXPECTED_ERROR",
            vec![],
        ),
        (
            Internal::SnapshotDamaged("pack ab: tag mismatch".into()).into(),
            "SNAPSHOT_DAMAGED",
            vec![],
        ),
        (
            ServiceError::unexpected("a bug".into()),
            "UNEXPECTED_ERROR",
            vec![],
        ),
    ]
}

/// `docs/api.md`'s error table: errorCode -> HTTP status.
fn documented_statuses() -> BTreeMap<String, u16> {
    let doc = include_str!("../../../docs/api.md");
    let table = doc
        .split("\n## Errors\n")
        .nth(1)
        .expect("docs/api.md has an Errors section");
    let mut statuses = BTreeMap::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let status: u16 = cells[2].parse().unwrap_or_else(|_| panic!("{line}"));
        for code in cells[1].split(',') {
            let code = code.trim().trim_matches('`');
            assert!(
                statuses.insert(code.to_string(), status).is_none(),
                "{code} is listed twice in docs/api.md"
            );
        }
    }
    statuses
}

#[test]
fn every_service_error_answers_as_docs_api_md_says() {
    let documented = documented_statuses();
    let mut seen = BTreeSet::new();
    for (error, code, parameters) in rows() {
        let name = variant(&error);
        seen.insert(name);
        let shown = error.to_string();
        let api = ApiError::from(error);
        assert_eq!(api.code, code, "{name}");
        let status = documented
            .get(code)
            .unwrap_or_else(|| panic!("{code} ({name}) is not in docs/api.md's error table"));
        assert_eq!(api.status.as_u16(), *status, "{name}: {code}");
        assert_eq!(api.parameters, parameters, "{name}");
        if code == "UNEXPECTED_ERROR" {
            assert_eq!(
                api.detail, "Unexpected error.",
                "{name}: internals stay logged"
            );
        } else {
            assert_eq!(api.detail, shown, "{name}");
        }
        let retry_after = api.headers.iter().any(|(k, _)| k == header::RETRY_AFTER);
        assert_eq!(
            retry_after,
            api.status == StatusCode::SERVICE_UNAVAILABLE,
            "{name}: Retry-After on 503 only"
        );
    }
    let missing: Vec<_> = ALL.iter().filter(|v| !seen.contains(*v)).collect();
    assert!(missing.is_empty(), "variants with no row: {missing:?}");
}

#[test]
fn only_dependency_outages_are_transient() {
    let transient: BTreeSet<&str> = rows()
        .iter()
        .filter(|(e, _, _)| e.is_transient())
        .map(|(e, _, _)| variant(e))
        .collect();
    assert_eq!(
        transient,
        BTreeSet::from([
            "Unavailable::KeyManager",
            "Unavailable::Storage",
            "Internal::Store"
        ]),
    );
    // Of the key manager's failures, only "no server answered" clears by itself.
    let refused: ServiceError = KeyManagerError::Refused {
        server: "kmip:5696".into(),
        operation: "Revoke".into(),
        reason: "ItemNotFound".into(),
    }
    .into();
    assert!(!refused.is_transient());
    let indeterminate: ServiceError = KeyManagerError::Indeterminate {
        server: "kmip:5696".into(),
        operation: "Create".into(),
        reason: "timed out".into(),
    }
    .into();
    assert!(!indeterminate.is_transient(), "a Create may have happened");
    let conflict: ServiceError = StoreError::Precondition("moved on".into()).into();
    assert!(!conflict.is_transient());
}
