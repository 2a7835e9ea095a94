//! Groups: `POST /groups`, `GET /groups`, `GET /groups/{G}`, `GET /groups/byName/{NAME}`
//! (Ops Manager).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use headlock_service::Actor;
use headlock_service::groups::GroupView;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::json::{Body, Render};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    Routes::new()
        .get("/groups", list)
        .post("/groups", create)
        .get("/groups/{group_id}", one)
        .get("/groups/byName/{name}", by_name)
}

/// `POST /groups` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewGroup {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    org_id: Option<String>,
}

pub(crate) fn group_json(r: &Render, g: &GroupView) -> Value {
    json!({
        "id": g.group.id,
        "name": g.group.name,
        "orgId": g.group.org_id,
        "created": crate::clusters::rfc3339(g.group.created),
        "clusterCount": g.cluster_count,
        "links": [r.link(&format!("/groups/{}", g.group.id), "self")],
    })
}

async fn create(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Body(body): Body<NewGroup>,
) -> Result<Response, ApiError> {
    let g = s.service.groups().create_group(&actor, &body.name).await?;
    Ok(r.entity(StatusCode::CREATED, group_json(&r, &g)))
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
) -> Result<Response, ApiError> {
    let (groups, total) = s.service.groups().list_groups(&actor, r.page).await?;
    Ok(r.list(groups.iter().map(|g| group_json(&r, g)).collect(), total))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path(group_id): Path<String>,
) -> Result<Response, ApiError> {
    let g = s.service.groups().group(&actor, &group_id).await?;
    Ok(r.entity(StatusCode::OK, group_json(&r, &g)))
}

async fn by_name(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let g = s.service.groups().group_by_name(&actor, &name).await?;
    Ok(r.entity(StatusCode::OK, group_json(&r, &g)))
}
