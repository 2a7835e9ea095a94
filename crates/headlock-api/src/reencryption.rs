//! Compromise recovery (extension): `POST /groups/{G}/backupConfigs/{C}/encryptionKey/compromised`
//! rotates the master key as a compromise (the old key revoked as KMIP "Key
//! Compromise") and starts a re-encryption job that rewrites every snapshot under a new
//! data key; it answers 202 with the job, or for a whole sharded cluster with a list of
//! one job per part. `GET .../reencryptionJobs` and `.../reencryptionJobs/{JOB}` show
//! the jobs and their progress. Roles: as `PUT .../encryptionKey` for the POST, any
//! reader of the group for the GETs.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use headlock_core::model::ReencryptionJob;
use headlock_service::Actor;
use serde_json::{Value, json};

use crate::clusters::rfc3339;
use crate::json::Render;
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    let base = "/groups/{group_id}/backupConfigs/{cluster_id}";
    Routes::new()
        .post(&format!("{base}/encryptionKey/compromised"), compromised)
        .get(&format!("{base}/reencryptionJobs"), list)
        .get(&format!("{base}/reencryptionJobs/{{job_id}}"), one)
}

/// A job as the API shows it. `cluster` is the cluster id of the request path (a whole
/// sharded cluster's, or the part's own), so that the self link works where it was
/// asked.
fn job_json(r: &Render, cluster: &str, j: &ReencryptionJob) -> Value {
    let g = j.group_id;
    json!({
        "id": j.id,
        "clusterId": j.cluster_id,
        "groupId": g,
        "statusName": j.status.as_str(),
        "created": rfc3339(j.created),
        "finished": j.finished.map(rfc3339),
        "snapshotsDone": j.snapshots_done,
        "snapshotsTotal": j.snapshots_total,
        "bytesDone": j.bytes_done,
        "bytesRemaining": j.bytes_total.saturating_sub(j.bytes_done),
        "errorMessage": j.error,
        "links": [
            r.link(&format!("/groups/{g}/backupConfigs/{cluster}/reencryptionJobs/{}", j.id), "self"),
            r.link(&format!("/groups/{g}/backupConfigs/{}/encryptionKey", j.cluster_id), "encryptionKey"),
            r.link(&format!("/groups/{g}/clusters/{}", j.cluster_id), "cluster"),
        ],
    })
}

async fn compromised(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let jobs = s
        .service
        .report_compromise(&actor, &group_id, &cluster_id)
        .await?;
    match jobs.as_slice() {
        [job] if job.cluster_id.to_string() == cluster_id => {
            Ok(r.entity(StatusCode::ACCEPTED, job_json(&r, &cluster_id, job)))
        }
        _ => {
            let results: Vec<Value> = jobs.iter().map(|j| job_json(&r, &cluster_id, j)).collect();
            let g = jobs
                .first()
                .map(|j| j.group_id.to_string())
                .unwrap_or(group_id);
            Ok(r.entity(
                StatusCode::ACCEPTED,
                json!({
                    "results": results,
                    "totalCount": jobs.len(),
                    "links": [r.link(&format!("/groups/{g}/backupConfigs/{cluster_id}/reencryptionJobs"), "self")],
                }),
            ))
        }
    }
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (jobs, total) = s
        .service
        .list_reencryption_jobs(&actor, &group_id, &cluster_id, r.page)
        .await?;
    Ok(r.list(
        jobs.iter().map(|j| job_json(&r, &cluster_id, j)).collect(),
        total,
    ))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, job_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let job = s
        .service
        .reencryption_job(&actor, &group_id, &cluster_id, &job_id)
        .await?;
    Ok(r.entity(StatusCode::OK, job_json(&r, &cluster_id, &job)))
}
