//! [`ApiError`]: the one error type of the API, rendered as Ops Manager's error body.
//!
//! ```json
//! {"detail": "...", "error": 404, "errorCode": "CLUSTER_NOT_FOUND",
//!  "parameters": ["..."], "reason": "Not Found"}
//! ```
//!
//! `ops_error` is the one mapping from a service error to Ops Manager's status,
//! `errorCode` and `parameters`; `docs/api.md`'s error table is the truth it follows
//! (`tests/errors.rs` checks every variant against it). Internal failures answer
//! `UNEXPECTED_ERROR` with a generic detail; what went wrong is logged, never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_core::model::BackupStatus;
use headlock_service::ServiceError;
use headlock_service::error::{
    BadRequest, Conflict, Denied, Duplicated, Internal, NotFound, Unavailable,
};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Ops Manager `errorCode`.
    pub code: &'static str,
    /// Human-readable detail (never secrets, never internals).
    pub detail: String,
    /// `parameters`.
    pub parameters: Vec<String>,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with no parameters.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            parameters: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// `RESOURCE_NOT_FOUND` for a path nothing serves.
    pub fn no_route(path: &str) -> Self {
        let path: String = path.chars().take(200).collect();
        let mut e = ApiError::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            format!("Cannot find resource {path}."),
        );
        e.parameters = vec![path];
        e
    }

    /// `INVALID_JSON` / `INVALID_ATTRIBUTE` (400) for a body that does not parse.
    pub fn bad_body(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", detail)
    }

    /// `UNSUPPORTED_MEDIA_TYPE` (415) for a request body that is not sent as JSON.
    pub fn unsupported_media_type() -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Request bodies must be JSON, sent with Content-Type: application/json.",
        )
    }

    /// `INVALID_QUERY_PARAMETER`-like (400) for a query parameter out of range.
    pub fn bad_query(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY_PARAMETER", detail)
    }
}

/// How Ops Manager answers a service error: status, `errorCode`, `parameters`, and
/// whether the detail may be shown.
struct OpsError {
    status: StatusCode,
    code: &'static str,
    parameters: Vec<String>,
    /// False for our own failures, whose text is logged and replaced by a generic detail.
    show_detail: bool,
}

/// The one mapping from a [`ServiceError`] to Ops Manager's answer. Every variant of every
/// group is matched by name, so a new variant does not compile until it has a row here;
/// `tests/errors.rs` checks the rows against the error table of `docs/api.md`.
fn ops_error(e: &ServiceError) -> OpsError {
    fn ops(status: StatusCode, code: &'static str, parameters: Vec<String>) -> OpsError {
        OpsError {
            status,
            code,
            parameters,
            show_detail: true,
        }
    }
    fn one(value: &impl ToString) -> Vec<String> {
        vec![value.to_string()]
    }
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    const CONFLICT: StatusCode = StatusCode::CONFLICT;
    match e {
        ServiceError::NotFound(e) => match e {
            NotFound::InvalidGroupId(g) => ops(NOT_FOUND, "INVALID_GROUP_ID", one(g)),
            NotFound::Group(g) => ops(NOT_FOUND, "GROUP_NOT_FOUND", one(g)),
            NotFound::GroupName(name) => ops(NOT_FOUND, "GROUP_NOT_FOUND", one(name)),
            NotFound::InvalidClusterId(c) => ops(NOT_FOUND, "INVALID_CLUSTER_ID", one(c)),
            NotFound::Cluster { cluster, group } => ops(
                NOT_FOUND,
                "CLUSTER_NOT_FOUND",
                vec![cluster.to_string(), group.to_string()],
            ),
            NotFound::BackupConfig { cluster, group } => ops(
                NOT_FOUND,
                "BACKUP_CONFIG_NOT_FOUND",
                vec![cluster.to_string(), group.to_string()],
            ),
            NotFound::Event(id) => ops(NOT_FOUND, "EVENT_NOT_FOUND", one(id)),
            NotFound::Snapshot(id) => ops(NOT_FOUND, "SNAPSHOT_NOT_FOUND", one(id)),
            NotFound::RestoreJob(id) => ops(NOT_FOUND, "RESTORE_JOB_NOT_FOUND", one(id)),
            NotFound::ReencryptionJob(id) => ops(NOT_FOUND, "REENCRYPTION_JOB_NOT_FOUND", one(id)),
            NotFound::User(name) => ops(NOT_FOUND, "USER_NOT_FOUND", one(name)),
            NotFound::MasterKey(uid) => ops(NOT_FOUND, "MASTER_KEY_NOT_FOUND", one(uid)),
            NotFound::UploadSession(id) => ops(NOT_FOUND, "UPLOAD_SESSION_NOT_FOUND", one(id)),
            NotFound::RestoreLinkGone => ops(StatusCode::GONE, "RESTORE_LINK_EXPIRED", vec![]),
        },
        ServiceError::BadRequest(e) => match e {
            BadRequest::InvalidInput(_) => {
                ops(StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE", vec![])
            }
            BadRequest::UploadInterrupted(_) => {
                ops(StatusCode::BAD_REQUEST, "UPLOAD_INTERRUPTED", vec![])
            }
            BadRequest::ChunkIdMismatch(id) => {
                ops(StatusCode::BAD_REQUEST, "CHUNK_ID_MISMATCH", one(id))
            }
        },
        ServiceError::Denied(e) => match e {
            Denied::NotInGroup => ops(StatusCode::UNAUTHORIZED, "NOT_IN_GROUP", vec![]),
            Denied::Forbidden => ops(StatusCode::FORBIDDEN, "USER_UNAUTHORIZED", vec![]),
        },
        ServiceError::Conflict(e) => match e {
            Conflict::Duplicate { what, .. } => {
                let code = match what {
                    Duplicated::GroupName => "DUPLICATE_GROUP_NAME",
                    Duplicated::ClusterName => "DUPLICATE_CLUSTER_NAME",
                    Duplicated::Username => "DUPLICATE_USERNAME",
                };
                ops(CONFLICT, code, vec![])
            }
            Conflict::CannotModifyShardBackupConfig { whole_cluster } => ops(
                CONFLICT,
                "CANNOT_MODIFY_SHARD_BACKUP_CONFIG",
                one(whole_cluster),
            ),
            Conflict::EncryptionDisabledBackup(c) => {
                ops(CONFLICT, "CANNOT_BACKUP_ENCRYPTION_DISABLED", one(c))
            }
            Conflict::EncryptionDisabledRotate(c) => {
                ops(CONFLICT, "CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED", one(c))
            }
            Conflict::EncryptionDisabledGet(c) => {
                ops(CONFLICT, "CANNOT_GET_KEY_ENCRYPTION_DISABLED", one(c))
            }
            Conflict::EncryptionHasSnapshots(c) => ops(
                CONFLICT,
                "CANNOT_DISABLE_ENCRYPTION_SNAPSHOTS_EXIST",
                one(c),
            ),
            Conflict::SnapshotProtected(s) => {
                ops(CONFLICT, "CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE", one(s))
            }
            Conflict::InvalidStatusTransition { to, .. } => match to {
                BackupStatus::Started => ops(CONFLICT, "CANNOT_START_BACKUP_INVALID_STATE", vec![]),
                BackupStatus::Stopped => ops(CONFLICT, "CANNOT_STOP_BACKUP_INVALID_STATE", vec![]),
                BackupStatus::Terminating => {
                    ops(CONFLICT, "CANNOT_TERMINATE_BACKUP_INVALID_STATE", vec![])
                }
                // Not a status a client can ask for: the attribute is wrong, not the state.
                BackupStatus::Inactive | BackupStatus::Provisioning => {
                    ops(StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE", vec![])
                }
            },
            Conflict::KeyChangeInProgress(c) => ops(CONFLICT, "KEY_CHANGE_IN_PROGRESS", one(c)),
            Conflict::CannotDeleteCluster(_) => ops(CONFLICT, "CANNOT_DELETE_CLUSTER", vec![]),
            Conflict::EncryptionKeyNotActive { cluster, .. } => {
                ops(CONFLICT, "ENCRYPTION_KEY_NOT_ACTIVE", one(cluster))
            }
            Conflict::CannotCancelKeyDestruction(_) => {
                ops(CONFLICT, "CANNOT_CANCEL_KEY_DESTRUCTION", vec![])
            }
            Conflict::UploadSessionStale(u) => ops(CONFLICT, "UPLOAD_SESSION_STALE", one(u)),
            Conflict::ChunksNotStored { first, count } => ops(
                CONFLICT,
                "CHUNKS_NOT_STORED",
                vec![first.clone(), count.to_string()],
            ),
        },
        ServiceError::Unavailable(e) => match e {
            Unavailable::KeyManager(_) => ops(
                StatusCode::SERVICE_UNAVAILABLE,
                "KMIP_SERVER_UNAVAILABLE",
                vec![],
            ),
            Unavailable::Storage(_) => ops(
                StatusCode::SERVICE_UNAVAILABLE,
                "STORAGE_UNAVAILABLE",
                vec![],
            ),
            Unavailable::StorageFull(_) => {
                ops(StatusCode::INSUFFICIENT_STORAGE, "STORAGE_FULL", vec![])
            }
        },
        ServiceError::Internal(e) => match e {
            Internal::SnapshotDamaged(_) => ops(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SNAPSHOT_DAMAGED",
                vec![],
            ),
            Internal::Store(_) | Internal::Unexpected(_) => OpsError {
                show_detail: false,
                ..ops(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNEXPECTED_ERROR",
                    vec![],
                )
            },
        },
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let OpsError {
            status,
            code,
            parameters,
            show_detail,
        } = ops_error(&e);
        let detail = if show_detail {
            e.to_string()
        } else {
            tracing::error!(error = %e, "internal error");
            "Unexpected error.".to_string()
        };
        let mut out = ApiError::new(status, code, detail);
        out.parameters = parameters;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %e, "a dependency failed");
            out.headers
                .push((header::RETRY_AFTER, HeaderValue::from_static("5")));
        } else if status == StatusCode::INTERNAL_SERVER_ERROR && show_detail {
            tracing::error!(error = %e, "stored data failed its checks");
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "detail": self.detail,
            "error": self.status.as_u16(),
            "errorCode": self.code,
            "parameters": self.parameters,
            "reason": self.status.canonical_reason().unwrap_or(""),
        });
        let mut resp = (self.status, crate::json::body_bytes(&body, false)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}
