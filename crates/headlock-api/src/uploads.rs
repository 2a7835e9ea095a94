//! Upload sessions (extension): the incremental backup protocol of `headlock backup`
//! (docs/api.md, "Snapshot uploads"):
//!
//! * `POST /groups/{G}/clusters/{C}/snapshotUploads`: 201, the session with its chunk
//!   keys (answered `Cache-Control: no-store`);
//! * `POST .../snapshotUploads/{U}/chunkIds`: body, chunk ids of 32 bytes back to back;
//!   answers which the cluster lacks;
//! * `PUT .../snapshotUploads/{U}/chunks`: body, chunk frames, streamed;
//! * `POST .../snapshotUploads/{U}/commit`: body, the NDJSON manifest, streamed; 201 the
//!   snapshot;
//! * `GET .../snapshotUploads/{U}/parent?source=PATH` or `?snapshot=S`: the parent's
//!   manifest, whose unchanged files the client need not read; 204 if there is none;
//! * `DELETE .../snapshotUploads/{U}`: 204.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_core::model::ChunkId;
use headlock_core::snapshot::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use headlock_service::Actor;
use headlock_service::snapshots::{
    MAX_BATCH_BYTES, MAX_BATCH_CHUNKS, MAX_QUERY_IDS, UploadSession,
};
use serde_json::json;

use crate::clusters::rfc3339;
use crate::json::Render;
use crate::routes::Routes;
use crate::snapshots::{draining_body, snapshot_json};
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    let base = "/groups/{group_id}/clusters/{cluster_id}/snapshotUploads";
    Routes::new()
        .post(base, open)
        .delete(&format!("{base}/{{upload_id}}"), abandon)
        .with(
            Method::POST,
            &format!("{base}/{{upload_id}}/chunkIds"),
            chunk_ids,
            |m| m.layer(DefaultBodyLimit::max(MAX_QUERY_IDS * 32)),
        )
        .with(
            Method::PUT,
            &format!("{base}/{{upload_id}}/chunks"),
            chunks,
            |m| m.layer(DefaultBodyLimit::disable()),
        )
        .get(&format!("{base}/{{upload_id}}/parent"), parent)
        .with(
            Method::POST,
            &format!("{base}/{{upload_id}}/commit"),
            commit,
            |m| m.layer(DefaultBodyLimit::disable()),
        )
}

fn session_json(r: &Render, s: &UploadSession) -> serde_json::Value {
    let (g, c) = (s.cluster.group_id, s.cluster.id);
    json!({
        "id": s.id,
        "groupId": g,
        "clusterId": c,
        "expires": rfc3339(s.expires),
        "chunkIdKey": hex::encode(*s.chunk_id_key),
        "chunkBoundaryKey": hex::encode(s.boundary_key),
        "minChunkBytes": MIN_CHUNK,
        "avgChunkBytes": AVG_CHUNK,
        "maxChunkBytes": MAX_CHUNK,
        "maxQueryIds": MAX_QUERY_IDS,
        "maxBatchBytes": MAX_BATCH_BYTES,
        "maxBatchChunks": MAX_BATCH_CHUNKS,
        "links": [
            r.link(&format!("/groups/{g}/clusters/{c}/snapshotUploads/{}", s.id), "self"),
            r.link(&format!("/groups/{g}/clusters/{c}"), "cluster"),
        ],
    })
}

async fn open(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = body.trim_ascii();
    if !(text.is_empty() || text == b"{}") {
        return Err(ApiError::bad_body(
            "an upload session is opened with an empty body or {}",
        ));
    }
    let session = s
        .service
        .open_upload(&actor, &group_id, &cluster_id)
        .await?;
    let mut resp = r.entity(StatusCode::CREATED, session_json(&r, &session));
    // The answer holds keys: no cache may keep it.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn chunk_ids(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, upload_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() % 32 != 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ATTRIBUTE",
            "the body is chunk ids of 32 bytes each, back to back",
        ));
    }
    let ids: Vec<ChunkId> = body
        .chunks_exact(32)
        .map(|b| {
            let mut id = [0u8; 32];
            id.copy_from_slice(b);
            ChunkId(id)
        })
        .collect();
    let answer = s
        .service
        .missing_chunks(&actor, &group_id, &cluster_id, &upload_id, &ids)
        .await?;
    Ok(r.entity(
        StatusCode::OK,
        json!({
            "known": answer.known,
            "missing": answer.missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    ))
}

async fn chunks(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, upload_id)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let reader = tokio_util::io::StreamReader::new(draining_body(body));
    let report = s
        .service
        .upload_chunks(&actor, &group_id, &cluster_id, &upload_id, reader)
        .await?;
    Ok(r.entity(
        StatusCode::OK,
        json!({
            "received": report.received,
            "stored": report.stored,
            "storedBytes": report.stored_bytes,
        }),
    ))
}

async fn commit(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, upload_id)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let reader = tokio_util::io::StreamReader::new(draining_body(body));
    let view = s
        .service
        .commit_upload(&actor, &group_id, &cluster_id, &upload_id, reader)
        .await?;
    Ok(r.entity(StatusCode::CREATED, snapshot_json(&r, &view)))
}

async fn abandon(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, upload_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    s.service
        .abandon_upload(&actor, &group_id, &cluster_id, &upload_id)
        .await?;
    Ok(r.empty(StatusCode::NO_CONTENT))
}

/// The query of a parent request: one of the two.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentQuery {
    source: Option<String>,
    snapshot: Option<String>,
}

async fn parent(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, upload_id)): Path<(String, String, String)>,
    Query(q): Query<ParentQuery>,
) -> Result<Response, ApiError> {
    if q.source.is_some() == q.snapshot.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_PARAMETER",
            "a parent is asked for by source=PATH or by snapshot=ID, one of the two",
        ));
    }
    let found = s
        .service
        .upload_parent(
            &actor,
            (&group_id, &cluster_id, &upload_id),
            q.source.as_deref(),
            q.snapshot.as_deref(),
        )
        .await?;
    let Some(p) = found else {
        return Ok(r.empty(StatusCode::NO_CONTENT));
    };
    // The same JSON as one document, written a manifest frame at a time: the service
    // never holds the parent's entries whole. Files whose chunks are gone are left
    // out. A frame that fails its checks ends the body early, so the client sees JSON
    // that does not parse, never a wrong parent.
    let head = json!({"snapshot": p.snapshot, "source": p.source()});
    let mut head = serde_json::to_vec(&head).unwrap_or_default();
    head.pop(); // the closing brace
    head.extend_from_slice(b",\"entries\":[");
    let (mut writer, reader) = tokio::io::duplex(256 * 1024);
    let snapshot = p.snapshot;
    let mut manifest = p;
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut first = true;
        let mut buf = head;
        loop {
            match manifest.next_batch().await {
                Ok(Some(entries)) => {
                    for e in &entries {
                        if !first {
                            buf.push(b',');
                        }
                        first = false;
                        if serde_json::to_writer(&mut buf, e).is_err() {
                            return;
                        }
                    }
                    if writer.write_all(&buf).await.is_err() {
                        return;
                    }
                    buf.clear();
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(%snapshot, error = %e, "parent manifest stopped (damaged, or the metadata store failed)");
                    return;
                }
            }
        }
        buf.extend_from_slice(b"]}");
        let _ = writer.write_all(&buf).await;
        let _ = writer.shutdown().await;
    });
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        reader,
        256 * 1024,
    ))
    .into_response();
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Chunk ids and names of files: no cache may keep them.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
