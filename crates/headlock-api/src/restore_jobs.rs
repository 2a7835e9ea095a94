//! Restore jobs (Ops Manager): `POST /groups/{G}/clusters/{C}/restoreJobs` with
//! `{"snapshotId"}`, `GET .../restoreJobs` and `.../restoreJobs/{J}`; and the HTTP
//! delivery link, `GET /backup/restore/{C}/{J}/{token}`, which needs no digest
//! authentication: the one-time token is the credential, as in Ops Manager's HTTP
//! restores. The token is derived from the job id under a server secret (only its
//! SHA-256 is stored), so the job shows its link, as Ops Manager does, until it is
//! used or expires, to the users who may create restore jobs in the group (to nobody
//! else: the token is a credential). `HEAD` on the link answers the headers of the
//! download without counting as it.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headlock_core::model::{RestoreJob, SnapshotKind};
use headlock_service::Actor;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clusters::rfc3339;
use crate::json::{Body as JsonBody, Render};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes under the API base.
pub fn router() -> Routes {
    let base = "/groups/{group_id}/clusters/{cluster_id}/restoreJobs";
    Routes::new()
        .get(base, list)
        .post(base, create)
        .get(&format!("{base}/{{job_id}}"), one)
}

/// The delivery route (outside the API base, no digest authentication).
pub fn download_router() -> Routes {
    let path = "/backup/restore/{cluster_id}/{job_id}/{token}";
    Routes::new().get(path, download).head(path, head)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewJob {
    snapshot_id: String,
}

fn job_json(r: &Render, j: &RestoreJob, token: Option<&str>) -> Value {
    let (g, c) = (j.group_id, j.cluster_id);
    let expired = time::OffsetDateTime::now_utc() > j.expires;
    let used = j.downloads >= j.max_downloads;
    let mut delivery = json!({
        "methodName": "HTTP",
        "expires": rfc3339(j.expires),
        "expirationHours": headlock_service::snapshots::RESTORE_LINK_HOURS,
        "maxDownloads": j.max_downloads,
        "statusName": if used { "DOWNLOADED" } else if expired { "EXPIRED" } else { "READY" },
    });
    if let Some(t) = token {
        delivery["url"] = json!(format!("{}/backup/restore/{c}/{}/{t}", r.origin, j.id));
    }
    json!({
        "id": j.id,
        "groupId": g,
        "clusterId": c,
        "snapshotId": j.snapshot_id,
        "created": rfc3339(j.created),
        "statusName": "FINISHED",
        "delivery": delivery,
        "links": [
            r.link(&format!("/groups/{g}/clusters/{c}/restoreJobs/{}", j.id), "self"),
            r.link(&format!("/groups/{g}/clusters/{c}"), "cluster"),
            r.link(&format!("/groups/{g}/clusters/{c}/snapshots/{}", j.snapshot_id), "snapshot"),
        ],
    })
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<NewJob>,
) -> Result<Response, ApiError> {
    let (job, token) = s
        .service
        .create_restore_job(&actor, &group_id, &cluster_id, &body.snapshot_id)
        .await?;
    Ok(r.list(vec![job_json(&r, &job, Some(&token))], 1))
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (jobs, total) = s
        .service
        .list_restore_jobs(&actor, &group_id, &cluster_id, r.page)
        .await?;
    Ok(r.list(
        jobs.iter()
            .map(|(j, token)| job_json(&r, j, token.as_deref()))
            .collect(),
        total,
    ))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, job_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (job, token) = s
        .service
        .restore_job(&actor, &group_id, &cluster_id, &job_id)
        .await?;
    Ok(r.entity(StatusCode::OK, job_json(&r, &job, token.as_deref())))
}

async fn download(
    State(s): State<AppState>,
    Path((cluster_id, job_id, token)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let d = s.service.download(&cluster_id, &job_id, &token).await?;
    let frames = futures_util::stream::unfold(d.frames, |mut frames| async move {
        let frame = frames.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), frames))
    });
    let mut resp = Body::from_stream(frames).into_response();
    delivery_headers(&mut resp, d.kind, d.content_length);
    Ok(resp)
}

/// `HEAD` on the link: the download's headers, and the link still unused (without an
/// explicit `HEAD` route axum would run the `GET` handler, which uses the link up).
async fn head(
    State(s): State<AppState>,
    Path((cluster_id, job_id, token)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let info = s
        .service
        .download_info(&cluster_id, &job_id, &token)
        .await?;
    let mut resp = StatusCode::OK.into_response();
    delivery_headers(&mut resp, info.kind, info.content_length);
    Ok(resp)
}

/// The type, file name and (for streams) length of a download.
fn delivery_headers(resp: &mut Response, kind: SnapshotKind, content_length: Option<u64>) {
    let headers = resp.headers_mut();
    let (ctype, name) = match kind {
        SnapshotKind::Tree => ("application/x-tar", "snapshot.tar"),
        SnapshotKind::Stream => ("application/octet-stream", "snapshot.bin"),
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = content_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}
