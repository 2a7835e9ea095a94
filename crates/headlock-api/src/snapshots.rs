//! Snapshots of a cluster:
//!
//! * `GET /groups/{G}/clusters/{C}/snapshots`, `GET`, `PATCH` (`expires`, `doNotDelete`)
//!   and `DELETE .../snapshots/{S}` (Ops Manager);
//! * `POST /groups/{G}/clusters/{C}/snapshots` (extension): the data is the request body,
//!   streamed, never buffered whole: `Content-Type: application/x-tar` for a directory
//!   tree, anything else for one byte stream. Answers 201 with the snapshot.
//! * `POST .../snapshots/{S}/verify` (extension): reads the snapshot back and checks every
//!   chunk; answers the report.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::TryStreamExt;
use headlock_core::model::SnapshotKind;
use headlock_service::Actor;
use headlock_service::snapshots::{SnapshotView, VerifyReport};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clusters::rfc3339;
use crate::json::{Body as JsonBody, Render};
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/groups/{group_id}/clusters/{cluster_id}/snapshots",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}",
            get(one).patch(patch).delete(remove),
        )
        .route(
            "/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}/verify",
            post(verify),
        )
}

pub(crate) fn snapshot_json(r: &Render, v: &SnapshotView) -> Value {
    let s = &v.record;
    let (g, c) = (s.group_id, s.cluster_id);
    json!({
        "id": s.id,
        "groupId": g,
        "clusterId": c,
        "created": {"date": rfc3339(s.created), "increment": 1},
        "complete": true,
        "expires": s.expires.map(rfc3339),
        "doNotDelete": s.do_not_delete,
        "kind": s.kind.as_str(),
        "parts": [{
            "clusterId": c,
            "replicaSetName": v.cluster.replica_set_name,
            "typeName": v.cluster.type_name.as_str(),
            "dataSizeBytes": s.data_size_bytes,
            "storageSizeBytes": s.stored_size_bytes,
            "fileSizeBytes": s.file_size_bytes,
            "encryptionEnabled": true,
            "masterKeyUUID": v.master_key_uid,
        }],
        "links": [
            r.link(&format!("/groups/{g}/clusters/{c}/snapshots/{}", s.id), "self"),
            r.link(&format!("/groups/{g}/clusters/{c}"), "cluster"),
            r.link(&format!("/groups/{g}"), "group"),
        ],
    })
}

async fn upload(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tar = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-tar"))
        });
    let kind = if tar {
        SnapshotKind::Tree
    } else {
        SnapshotKind::Stream
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let view = s
        .service
        .backup(&actor, &group_id, &cluster_id, kind, reader)
        .await?;
    Ok(r.entity(StatusCode::CREATED, snapshot_json(&r, &view)))
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (views, total) = s
        .service
        .list_snapshots(&actor, &group_id, &cluster_id, r.page)
        .await?;
    Ok(r.list(views.iter().map(|v| snapshot_json(&r, v)).collect(), total))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, snapshot_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let v = s
        .service
        .snapshot(&actor, &group_id, &cluster_id, &snapshot_id)
        .await?;
    Ok(r.entity(StatusCode::OK, snapshot_json(&r, &v)))
}

/// `PATCH` body; `expires: null` clears the expiry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default, deserialize_with = "present")]
    expires: Option<Option<String>>,
    #[serde(default)]
    do_not_delete: Option<bool>,
}

/// Tells an absent field (None) from an explicit `null` (Some(None)).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn patch(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, snapshot_id)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Response, ApiError> {
    let expires = match body.expires {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_ATTRIBUTE",
                        "expires must be an ISO 8601 date and time, e.g. 2027-01-31T00:00:00Z.",
                    )
                })?,
        )),
    };
    let v = s
        .service
        .patch_snapshot(
            &actor,
            &group_id,
            &cluster_id,
            &snapshot_id,
            expires,
            body.do_not_delete,
        )
        .await?;
    Ok(r.entity(StatusCode::OK, snapshot_json(&r, &v)))
}

async fn remove(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, snapshot_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    s.service
        .delete_snapshot(&actor, &group_id, &cluster_id, &snapshot_id)
        .await?;
    Ok(r.empty(StatusCode::ACCEPTED))
}

fn report_json(v: &VerifyReport) -> Value {
    json!({
        "snapshotId": v.snapshot_id,
        "ok": v.ok(),
        "manifestOk": v.manifest_ok,
        "manifestError": v.manifest_error,
        "chunksChecked": v.chunks_checked,
        "bytesChecked": v.bytes_checked,
        "damaged": v.damaged.iter().map(|d| json!({
            "chunkId": d.chunk_id.to_string(),
            "packId": d.pack_id,
            "reason": d.reason,
            "snapshotIds": d.snapshot_ids,
        })).collect::<Vec<_>>(),
    })
}

async fn verify(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, snapshot_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let report = s
        .service
        .verify_snapshot(&actor, &group_id, &cluster_id, &snapshot_id)
        .await?;
    Ok(r.entity(StatusCode::OK, report_json(&report)))
}
