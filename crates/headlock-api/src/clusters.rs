//! Clusters: `GET /groups/{G}/clusters` (with `parentClusterId`), `GET` and `DELETE
//! /groups/{G}/clusters/{C}` (Ops Manager), and `POST /groups/{G}/clusters` (extension:
//! Ops Manager discovers clusters from its agents, Headlock registers them).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use headlock_core::model::{Cluster, ClusterType};
use headlock_service::Actor;
use headlock_service::clusters::{NewCluster, NewShard};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::json::{Body, Render};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    let one_path = "/groups/{group_id}/clusters/{cluster_id}";
    Routes::new()
        .get("/groups/{group_id}/clusters", list)
        .post("/groups/{group_id}/clusters", register)
        .get(one_path, one)
        .delete(one_path, remove)
}

/// RFC 3339 in UTC with seconds, as Ops Manager prints dates.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ShardBody {
    shard_name: String,
    replica_set_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewClusterBody {
    cluster_name: String,
    type_name: String,
    #[serde(default)]
    replica_set_name: Option<String>,
    #[serde(default)]
    shards: Option<Vec<ShardBody>>,
    #[serde(default)]
    config_server_replica_set: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    parent_cluster_id: Option<String>,
}

pub(crate) fn cluster_json(r: &Render, c: &Cluster) -> Value {
    let mut v = json!({
        "id": c.id,
        "groupId": c.group_id,
        "clusterName": c.cluster_name,
        "typeName": c.type_name.as_str(),
        "links": [
            r.link(&format!("/groups/{}/clusters/{}", c.group_id, c.id), "self"),
            r.link(&format!("/groups/{}", c.group_id), "group"),
        ],
    });
    if let Some(rs) = &c.replica_set_name {
        v["replicaSetName"] = json!(rs);
    }
    if let Some(s) = &c.shard_name {
        v["shardName"] = json!(s);
    }
    if let Some(p) = c.parent_cluster_id {
        v["parentClusterId"] = json!(p);
    }
    v
}

async fn register(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path(group_id): Path<String>,
    Body(body): Body<NewClusterBody>,
) -> Result<Response, ApiError> {
    let type_name = ClusterType::parse(&body.type_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ATTRIBUTE",
            "typeName must be REPLICA_SET or SHARDED_REPLICA_SET.",
        )
    })?;
    let new = NewCluster {
        cluster_name: body.cluster_name,
        type_name,
        replica_set_name: body.replica_set_name,
        shards: body
            .shards
            .unwrap_or_default()
            .into_iter()
            .map(|s| NewShard {
                shard_name: s.shard_name,
                replica_set_name: s.replica_set_name,
            })
            .collect(),
        config_server_replica_set: body.config_server_replica_set,
    };
    let clusters = s.service.register_cluster(&actor, &group_id, new).await?;
    let mut whole = cluster_json(&r, &clusters[0]);
    if clusters.len() > 1 {
        // Extension: the parts of a sharded cluster, so their ids are known at once.
        whole["parts"] = Value::Array(clusters[1..].iter().map(|c| cluster_json(&r, c)).collect());
    }
    Ok(r.entity(StatusCode::CREATED, whole))
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path(group_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (clusters, total) = s
        .service
        .list_clusters(&actor, &group_id, q.parent_cluster_id.as_deref(), r.page)
        .await?;
    Ok(r.list(
        clusters.iter().map(|c| cluster_json(&r, c)).collect(),
        total,
    ))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let c = s.service.cluster(&actor, &group_id, &cluster_id).await?;
    Ok(r.entity(StatusCode::OK, cluster_json(&r, &c)))
}

async fn remove(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.service
        .delete_cluster(&actor, &group_id, &cluster_id)
        .await?;
    Ok(r.empty(StatusCode::ACCEPTED))
}
