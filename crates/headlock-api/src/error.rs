//! [`ApiError`]: the one error type of the API, rendered as Ops Manager's error body.
//!
//! ```json
//! {"detail": "...", "error": 404, "errorCode": "CLUSTER_NOT_FOUND",
//!  "parameters": ["..."], "reason": "Not Found"}
//! ```
//!
//! Internal failures answer `UNEXPECTED_ERROR` with a generic detail; what went wrong is
//! logged, never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_service::ServiceError;
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

    /// `INVALID_QUERY_PARAMETER`-like (400) for a query parameter out of range.
    pub fn bad_query(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY_PARAMETER", detail)
    }
}

/// The status Ops Manager uses for a service error code.
fn status_of(e: &ServiceError) -> StatusCode {
    use ServiceError::*;
    match e {
        InvalidGroupId(_)
        | GroupNotFound(_)
        | GroupNameNotFound(_)
        | InvalidClusterId(_)
        | ClusterNotFound { .. }
        | BackupConfigNotFound { .. }
        | UserNotFound(_)
        | EventNotFound(_) => StatusCode::NOT_FOUND,
        NotInGroup => StatusCode::UNAUTHORIZED,
        Forbidden => StatusCode::FORBIDDEN,
        InvalidInput(_) => StatusCode::BAD_REQUEST,
        Duplicate { .. }
        | CannotModifyShardBackupConfig { .. }
        | EncryptionDisabledRotate(_)
        | EncryptionDisabledGet(_)
        | InvalidStatusTransition { .. }
        | KeyChangeInProgress(_)
        | CannotDelete(_) => StatusCode::CONFLICT,
        KeyManager(_) | Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        SnapshotNotFound(_) | RestoreJobNotFound(_) | ReencryptionJobNotFound(_) => {
            StatusCode::NOT_FOUND
        }
        RestoreLinkGone => StatusCode::GONE,
        EncryptionDisabledBackup(_) | EncryptionHasSnapshots(_) | SnapshotProtected(_) => {
            StatusCode::CONFLICT
        }
        UploadInterrupted(_) => StatusCode::BAD_REQUEST,
        EncryptionKeyNotActive { .. } | CannotCancelKeyDestruction(_) => StatusCode::CONFLICT,
        MasterKeyNotFound(_) => StatusCode::NOT_FOUND,
        StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = status_of(&e);
        let internal = matches!(e, ServiceError::Store(_) | ServiceError::Internal(_));
        let detail = if internal {
            tracing::error!(error = %e, "internal error");
            "Unexpected error.".to_string()
        } else {
            e.to_string()
        };
        let mut out = ApiError::new(status, e.code(), detail);
        out.parameters = e.parameters();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %e, "a dependency failed");
            out.headers
                .push((header::RETRY_AFTER, HeaderValue::from_static("5")));
        } else if status == StatusCode::INTERNAL_SERVER_ERROR && !internal {
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
