//! Backup configs and their master key:
//!
//! * `GET /groups/{G}/backupConfigs`, `GET` and `PATCH /groups/{G}/backupConfigs/{C}` (Ops Manager);
//! * `GET` and `PUT /groups/{G}/backupConfigs/{C}/encryptionKey` (Ops Manager, the
//!   "Backup Encryption Keys" page): GET shows the current KMIP master key's id, PUT
//!   rotates it and answers 201 with no key id in the body. A PUT on a whole sharded
//!   cluster rotates every shard and the config server replica set, and a GET on it lists
//!   each part's key under `parts` (both extensions).
//! * `GET /groups/{G}/backupConfigs/{C}/encryptionKeys` (extension): the key history,
//!   with each retired key's destruction schedule and fate;
//!   `POST .../encryptionKeys/{UUID}/restore` (extension) cancels a retired key's
//!   destruction for good.
//! * Key lifecycle fields of a backup config (extension): `encryptionKeyRotationPeriodDays`
//!   and `retiredKeyDestroyAfterDays` (PATCH-able), `lastEncryptionKeyRotation`,
//!   `nextEncryptionKeyRotation`, `encryptionKeyStatus` and `encryptionKeyError`
//!   (read-only).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use headlock_core::model::{AuthMechanism, BackupConfig, BackupStatus};
use headlock_service::Actor;
use headlock_service::clusters::BackupConfigPatch;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::json::{Body, Render};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// The routes of this resource.
pub fn router() -> Routes {
    let one_path = "/groups/{group_id}/backupConfigs/{cluster_id}";
    Routes::new()
        .get("/groups/{group_id}/backupConfigs", list)
        .get(one_path, one)
        .patch(one_path, patch)
        .get(&format!("{one_path}/encryptionKey"), get_key)
        .put(&format!("{one_path}/encryptionKey"), rotate_key)
        .get(&format!("{one_path}/encryptionKeys"), key_history)
        .post(
            &format!("{one_path}/encryptionKeys/{{key_id}}/restore"),
            cancel_destruction,
        )
}

/// `PATCH` body. Clients in the wild send every field, with zero values and `null`
/// arrays, and echo `groupId`, `clusterId` and `links`: all accepted; `null` means
/// "leave as is". Anything else is refused.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    cluster_id: Option<String>,
    #[serde(default)]
    status_name: Option<String>,
    #[serde(default)]
    encryption_enabled: Option<bool>,
    #[serde(default)]
    storage_engine_name: Option<String>,
    #[serde(default)]
    ssl_enabled: Option<bool>,
    #[serde(default)]
    excluded_namespaces: Option<Vec<String>>,
    #[serde(default)]
    included_namespaces: Option<Vec<String>>,
    #[serde(default)]
    auth_mechanism_name: Option<String>,
    #[serde(default)]
    encryption_key_rotation_period_days: Option<i64>,
    #[serde(default)]
    retired_key_destroy_after_days: Option<i64>,
    // Read-only fields a client may echo back: accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    last_encryption_key_rotation: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    next_encryption_key_rotation: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    encryption_key_status: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    encryption_key_error: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    links: Option<Value>,
}

fn config_json(r: &Render, c: &BackupConfig) -> Value {
    json!({
        "groupId": c.group_id,
        "clusterId": c.cluster_id,
        "statusName": c.status.as_str(),
        "encryptionEnabled": c.encryption_enabled,
        "storageEngineName": c.storage_engine_name,
        "sslEnabled": c.ssl_enabled,
        "excludedNamespaces": c.excluded_namespaces,
        "includedNamespaces": c.included_namespaces,
        "authMechanismName": c.auth_mechanism.as_str(),
        "links": [
            r.link(&format!("/groups/{}/backupConfigs/{}", c.group_id, c.cluster_id), "self"),
            r.link(&format!("/groups/{}/clusters/{}", c.group_id, c.cluster_id), "cluster"),
            r.link(&format!("/groups/{}", c.group_id), "group"),
        ],
    })
}

/// [`config_json`] with the key lifecycle fields (extension).
async fn config_full(s: &AppState, r: &Render, c: &BackupConfig) -> Result<Value, ApiError> {
    let mut v = config_json(r, c);
    let l = s.service.key_lifecycle_view(c).await?;
    let rfc = crate::clusters::rfc3339;
    v["encryptionKeyRotationPeriodDays"] = json!(l.settings.rotation_period_days);
    v["retiredKeyDestroyAfterDays"] = json!(l.settings.retired_key_destroy_after_days);
    v["lastEncryptionKeyRotation"] = json!(l.last_rotation.map(rfc));
    v["nextEncryptionKeyRotation"] = json!(l.next_rotation.map(rfc));
    v["encryptionKeyStatus"] = match (&l.key_error, l.has_key) {
        (Some(_), _) => json!("ERROR"),
        (None, true) => json!("ACTIVE"),
        (None, false) => Value::Null,
    };
    v["encryptionKeyError"] = json!(l.key_error);
    Ok(v)
}

async fn list(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path(group_id): Path<String>,
) -> Result<Response, ApiError> {
    let (configs, total) = s
        .service
        .list_backup_configs(&actor, &group_id, r.page)
        .await?;
    let mut results = Vec::with_capacity(configs.len());
    for c in &configs {
        results.push(config_full(&s, &r, c).await?);
    }
    Ok(r.list(results, total))
}

async fn one(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let c = s
        .service
        .backup_config(&actor, &group_id, &cluster_id)
        .await?;
    Ok(r.entity(StatusCode::OK, config_full(&s, &r, &c).await?))
}

fn invalid(detail: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ATTRIBUTE", detail)
}

async fn patch(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
    Body(body): Body<PatchBody>,
) -> Result<Response, ApiError> {
    if let Some(g) = body.group_id.as_deref().filter(|g| !g.is_empty())
        && !g.eq_ignore_ascii_case(&group_id)
    {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "GROUP_MISMATCH",
            "The groupId in the body does not match the group in the path.",
        );
        e.parameters = vec![
            g.chars().take(64).collect(),
            group_id.chars().take(64).collect(),
        ];
        return Err(e);
    }
    if let Some(c) = body.cluster_id.as_deref().filter(|c| !c.is_empty())
        && !c.eq_ignore_ascii_case(&cluster_id)
    {
        return Err(invalid(
            "The clusterId in the body does not match the cluster in the path.".into(),
        ));
    }
    let status = match body.status_name.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(BackupStatus::parse(v).ok_or_else(|| {
            invalid(
                "statusName must be one of INACTIVE, PROVISIONING, STARTED, STOPPED, TERMINATING."
                    .into(),
            )
        })?),
    };
    let auth_mechanism = match body
        .auth_mechanism_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(v) => Some(AuthMechanism::parse(v).ok_or_else(|| {
            invalid(
                "authMechanismName must be one of MONGODB_CR, GSSAPI, PLAIN, MONGODB_X509, NONE."
                    .into(),
            )
        })?),
    };
    let patch = BackupConfigPatch {
        status,
        encryption_enabled: body.encryption_enabled,
        storage_engine_name: body.storage_engine_name.filter(|s| !s.is_empty()),
        ssl_enabled: body.ssl_enabled,
        excluded_namespaces: body.excluded_namespaces,
        included_namespaces: body.included_namespaces,
        auth_mechanism,
        rotation_period_days: body.encryption_key_rotation_period_days,
        retired_key_destroy_after_days: body.retired_key_destroy_after_days,
    };
    let c = s
        .service
        .patch_backup_config(&actor, &group_id, &cluster_id, patch)
        .await?;
    Ok(r.entity(StatusCode::OK, config_full(&s, &r, &c).await?))
}

async fn get_key(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let k = s
        .service
        .encryption_key(&actor, &group_id, &cluster_id)
        .await?;
    let (g, c) = (k.group_id, k.cluster_id);
    let mut v = json!({
        "clusterId": c,
        "groupId": g,
    });
    match k.encryption_key_uuid {
        Some(uid) => v["encryptionKeyUUID"] = json!(uid),
        None => {
            v["parts"] = Value::Array(
                k.parts
                    .iter()
                    .map(|(part, uid)| {
                        json!({
                            "clusterId": part,
                            "encryptionKeyUUID": uid,
                            "links": [r.link(&format!("/groups/{g}/backupConfigs/{part}/encryptionKey"), "self")],
                        })
                    })
                    .collect(),
            )
        }
    }
    v["links"] = json!([
        r.link(
            &format!("/groups/{g}/backupConfigs/{c}/encryptionKey"),
            "self"
        ),
        r.link(&format!("/groups/{g}/clusters/{c}"), "cluster"),
        r.link(&format!("/groups/{g}"), "group"),
    ]);
    Ok(r.entity(StatusCode::OK, v))
}

async fn rotate_key(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.service
        .rotate_encryption_key(&actor, &group_id, &cluster_id)
        .await?;
    Ok(r.empty(StatusCode::CREATED))
}

async fn key_history(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let history = s
        .service
        .key_history(&actor, &group_id, &cluster_id)
        .await?;
    let total = history.len() as u64;
    let start = (r.page.offset() as usize).min(history.len());
    let end = (start + r.page.size as usize).min(history.len());
    let results = history[start..end]
        .iter()
        .map(|h| history_json(&r, &group_id, h))
        .collect();
    Ok(r.list(results, total))
}

/// One key history entry.
fn history_json(
    r: &Render,
    group_id: &str,
    h: &headlock_service::clusters::KeyHistoryEntry,
) -> Value {
    use headlock_core::model::RetiredKeyFate;
    let rfc = crate::clusters::rfc3339;
    let k = &h.key;
    let destroyed = h
        .fate
        .as_ref()
        .filter(|f| f.fate == RetiredKeyFate::Destroyed)
        .map(|f| rfc(f.changed));
    // A destroyed key may be gone from the KMIP server (PyKMIP deletes it): our record
    // says what its state is.
    let state = if destroyed.is_some() {
        Some("Destroyed")
    } else {
        h.state.map(|st| st.as_str())
    };
    let mut v = json!({
        "encryptionKeyUUID": k.kmip_uid,
        "kmipServer": k.kmip_server,
        "created": rfc(k.created),
        "activated": rfc(k.created),
        "retired": k.retired.map(rfc),
        "destroyed": destroyed,
        "scheduledDestruction": h.scheduled_destruction.map(rfc),
        "destructionCancelled": h.fate.as_ref().is_some_and(|f| f.fate == RetiredKeyFate::Kept),
        "state": state,
        "rotationType": k.rotation_type.as_str(),
        "requestedBy": k.requested_by,
        "dataKeyCount": h.data_keys,
        "snapshotCount": h.snapshots,
        "links": [r.link(
            &format!(
                "/groups/{}/backupConfigs/{}/encryptionKeys",
                group_id.to_ascii_lowercase(),
                k.cluster_id
            ),
            "self",
        )],
    });
    if let Some(e) = h.state_error.as_ref().filter(|_| destroyed.is_none()) {
        v["stateError"] = json!(e);
    }
    v
}

async fn cancel_destruction(
    State(s): State<AppState>,
    Extension(actor): Extension<Actor>,
    r: Render,
    Path((group_id, cluster_id, key_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let h = s
        .service
        .cancel_key_destruction(&actor, &group_id, &cluster_id, &key_id)
        .await?;
    Ok(r.entity(StatusCode::OK, history_json(&r, &group_id, &h)))
}
