//! Events: `GET /groups/{G}/events` and `GET /groups/{G}/events/{ID}` (Ops Manager), newest first, from the hash-chained
//! audit trail. Extension fields: `outcome`, `oldEncryptionKeyUUID`, `newEncryptionKeyUUID`,
//! `detail`.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
use headlock_core::model::AuditEvent;
use headlock_service::Actor;
use serde_json::{Value, json};

use crate::json::Render;
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    Routes::new()
        .get("/groups/{group_id}/events", list)
        .get("/groups/{group_id}/events/{event_id}", one)
}

fn event_json(r: &Render, e: &AuditEvent) -> Value {
    let mut v = json!({
        "id": e.id,
        "created": crate::clusters::rfc3339(e.created),
        "eventTypeName": e.event_type,
        "outcome": e.outcome,
    });
    if let Some(g) = e.group_id {
        v["groupId"] = json!(g);
        v["links"] = json!([r.link(&format!("/groups/{g}/events/{}", e.id), "self")]);
    }
    if let Some(c) = e.cluster_id {
        v["clusterId"] = json!(c);
    }
    if let Some(u) = &e.username {
        v["username"] = json!(u);
    }
    if let Some(a) = &e.remote_address {
        v["remoteAddress"] = json!(a);
    }
    if let Some(k) = &e.old_key_uid {
        v["oldEncryptionKeyUUID"] = json!(k);
    }
    if let Some(k) = &e.new_key_uid {
        v["newEncryptionKeyUUID"] = json!(k);
    }
    if let Some(d) = &e.detail {
        v["detail"] = json!(d);
    }
    v
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path(group_id): Path<String>,
) -> Result<Response, ApiError> {
    let (events, total) = s
        .service
        .events()
        .list_events(&actor, &group_id, r.page)
        .await?;
    Ok(r.list(events.iter().map(|e| event_json(&r, e)).collect(), total))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let e = s
        .service
        .events()
        .event(&actor, &group_id, &event_id)
        .await?;
    Ok(r.entity(axum::http::StatusCode::OK, event_json(&r, &e)))
}
