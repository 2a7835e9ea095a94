//! Snapshots of a cluster:
//!
//! * `GET /groups/{G}/clusters/{C}/snapshots`, `GET`, `PATCH` (`expires`, `doNotDelete`)
//!   and `DELETE .../snapshots/{S}` (Ops Manager);
//! * `POST /groups/{G}/clusters/{C}/snapshots` (extension): the data is the request body,
//!   streamed, never buffered whole: `Content-Type: application/x-tar` for a directory
//!   tree, anything else for one byte stream. Answers 201 with the snapshot.
//! * `POST .../snapshots/{S}/verify` (extension): reads the snapshot back and checks every
//!   chunk; answers the report.

use axum::Extension;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use headlock_core::model::SnapshotKind;
use headlock_service::Actor;
use headlock_service::snapshots::{SnapshotView, VerifyReport};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clusters::rfc3339;
use crate::json::{Body as JsonBody, Render};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    let base = "/groups/{group_id}/clusters/{cluster_id}/snapshots";
    let one_path = format!("{base}/{{snapshot_id}}");
    Routes::new()
        .get(base, list)
        .with(Method::POST, base, upload, |m| {
            m.layer(DefaultBodyLimit::disable())
        })
        .get(&one_path, one)
        .patch(&one_path, patch)
        .delete(&one_path, remove)
        .post(&format!("{one_path}/verify"), verify)
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
    let reader = tokio_util::io::StreamReader::new(draining_body(body));
    let view = s
        .service
        .backup(&actor, &group_id, &cluster_id, kind, reader)
        .await?;
    Ok(r.entity(StatusCode::CREATED, snapshot_json(&r, &view)))
}

/// Most of a refused upload's body read and thrown away so that its client can read the
/// answer.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// Longest time spent doing that.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The request body as a stream, passed through a small channel by a task of its own.
/// When the service stops reading early (a refused backup: encryption off, unknown
/// cluster), the task goes on reading and discarding the body, up to [`DRAIN_LIMIT`]
/// bytes and [`DRAIN_TIME`]: a server that answers and closes while the client is still
/// sending makes the client's kernel see a reset, and most clients then lose the answer
/// along with the connection (curl copes; others report "error writing a body").
pub(crate) fn draining_body(
    body: Body,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send + Unpin + 'static {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut stream = body.into_data_stream();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item.map_err(std::io::Error::other)).await.is_err() {
                // The reader is gone: drain what is left, within bounds.
                let drained = async {
                    let mut total = 0u64;
                    while let Some(Ok(bytes)) = stream.next().await {
                        total += bytes.len() as u64;
                        if total > DRAIN_LIMIT {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(DRAIN_TIME, drained).await;
                return;
            }
            if failed {
                return;
            }
        }
    });
    tokio_stream_of(rx)
}

/// A receiver as a stream.
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + Unpin + 'static {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
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
