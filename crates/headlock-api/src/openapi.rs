//! The OpenAPI 3.1 document of the whole API, generated from one table (`OPS`) of the
//! operations and the JSON Schemas of their bodies (`schemas`). The router's own route
//! table ([`crate::routes`]) must match `OPS` exactly ([`check`]), so a route mounted
//! without a description fails the tests; docs/openapi.json is [`document`] rendered
//! with [`render`] (regenerate:
//! `HEADLOCK_WRITE_OPENAPI=1 cargo test -p headlock-api --lib openapi`).
//!
//! Served at `GET /api/public/v1.0/openapi.json`, behind digest authentication like the
//! rest of the base: it reveals nothing a user cannot read in docs/, but the
//! unauthenticated surface stays the operations endpoints and delivery links.
//!
//! The `links` of the answers chain group -> cluster -> backup config -> encryption key,
//! so stateful testers (schemathesis) can follow real ids through the API.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Where the document is served, under [`crate::json::BASE`].
pub const PATH: &str = "/openapi.json";

/// A request body.
#[derive(Clone, Copy)]
enum In {
    /// None.
    Nothing,
    /// JSON matching the named schema.
    Json(&'static str),
    /// Raw bytes of these media types.
    Bytes(&'static [&'static str]),
}

/// A success answer.
#[derive(Clone, Copy)]
enum Out {
    /// JSON matching the named schema.
    Json(&'static str),
    /// No body.
    Empty,
    /// Bytes of this media type.
    Bytes(&'static str),
}

/// One operation: method, path template (as mounted), operation id, summary, whether it
/// needs digest authentication, request body, success status and answer.
struct Op(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    In,
    u16,
    Out,
);

/// Every operation the router mounts (see the module docs).
#[rustfmt::skip]
const OPS: &[Op] = &[
    Op("GET", "/api/public/v1.0/groups", "listGroups", "Groups the user may read", true, In::Nothing, 200, Out::Json("GroupList")),
    Op("POST", "/api/public/v1.0/groups", "createGroup", "Create a group (global owners)", true, In::Json("NewGroup"), 201, Out::Json("Group")),
    Op("GET", "/api/public/v1.0/groups/{group_id}", "getGroup", "One group", true, In::Nothing, 200, Out::Json("Group")),
    Op("GET", "/api/public/v1.0/groups/byName/{name}", "getGroupByName", "One group by name", true, In::Nothing, 200, Out::Json("Group")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters", "listClusters", "Clusters of a group", true, In::Nothing, 200, Out::Json("ClusterList")),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters", "registerCluster", "Register a cluster (extension)", true, In::Json("NewCluster"), 201, Out::Json("Cluster")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}", "getCluster", "One cluster", true, In::Nothing, 200, Out::Json("Cluster")),
    Op("DELETE", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}", "deleteCluster", "Delete a cluster, revoking its master keys", true, In::Nothing, 202, Out::Empty),
    Op("GET", "/api/public/v1.0/groups/{group_id}/backupConfigs", "listBackupConfigs", "Backup configs of a group", true, In::Nothing, 200, Out::Json("BackupConfigList")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}", "getBackupConfig", "One backup config", true, In::Nothing, 200, Out::Json("BackupConfig")),
    Op("PATCH", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}", "patchBackupConfig", "Change a backup config", true, In::Json("BackupConfigPatch"), 200, Out::Json("BackupConfig")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/encryptionKey", "getEncryptionKey", "The current master key", true, In::Nothing, 200, Out::Json("EncryptionKey")),
    Op("PUT", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/encryptionKey", "rotateEncryptionKey", "Rotate the master key", true, In::Nothing, 201, Out::Empty),
    Op("POST", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/encryptionKey/compromised", "recoverCompromise", "Compromise recovery (extension)", true, In::Nothing, 202, Out::Json("ReencryptionStarted")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/encryptionKeys", "listEncryptionKeys", "Every master key the cluster has had (extension)", true, In::Nothing, 200, Out::Json("KeyHistoryList")),
    Op("POST", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/encryptionKeys/{key_id}/restore", "cancelKeyDestruction", "Cancel a retired key's destruction (extension)", true, In::Nothing, 200, Out::Json("KeyHistoryEntry")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/reencryptionJobs", "listReencryptionJobs", "Re-encryption jobs (extension)", true, In::Nothing, 200, Out::Json("ReencryptionJobList")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/backupConfigs/{cluster_id}/reencryptionJobs/{job_id}", "getReencryptionJob", "One re-encryption job (extension)", true, In::Nothing, 200, Out::Json("ReencryptionJob")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/events", "listEvents", "Audit events, newest first", true, In::Nothing, 200, Out::Json("EventList")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/events/{event_id}", "getEvent", "One audit event", true, In::Nothing, 200, Out::Json("Event")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshots", "listSnapshots", "Snapshots, newest first", true, In::Nothing, 200, Out::Json("SnapshotList")),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshots", "uploadSnapshot", "Upload a snapshot, streamed (extension)", true, In::Bytes(&["application/x-tar", "application/octet-stream"]), 201, Out::Json("Snapshot")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}", "getSnapshot", "One snapshot", true, In::Nothing, 200, Out::Json("Snapshot")),
    Op("PATCH", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}", "patchSnapshot", "Change a snapshot's expiry or doNotDelete", true, In::Json("SnapshotPatch"), 200, Out::Json("Snapshot")),
    Op("DELETE", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}", "deleteSnapshot", "Delete a snapshot", true, In::Nothing, 202, Out::Empty),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshots/{snapshot_id}/verify", "verifySnapshot", "Verify a snapshot (extension)", true, In::Nothing, 200, Out::Json("VerifyReport")),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshotUploads", "openUpload", "Open an incremental upload session (extension)", true, In::Nothing, 201, Out::Json("UploadSession")),
    Op("DELETE", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshotUploads/{upload_id}", "abandonUpload", "Abandon an upload session (extension)", true, In::Nothing, 204, Out::Empty),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshotUploads/{upload_id}/chunkIds", "queryChunkIds", "Which chunk ids the cluster lacks (extension)", true, In::Bytes(&["application/octet-stream"]), 200, Out::Json("ChunkIdsAnswer")),
    Op("PUT", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshotUploads/{upload_id}/chunks", "putChunks", "Send chunks (extension)", true, In::Bytes(&["application/octet-stream"]), 200, Out::Json("ChunksAnswer")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshotUploads/{upload_id}/parent", "getUploadParent", "The parent snapshot's manifest, by source=PATH or snapshot=ID; 204 if none (extension)", true, In::Nothing, 200, Out::Json("UploadParent")),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/snapshotUploads/{upload_id}/commit", "commitUpload", "Commit the manifest (extension)", true, In::Bytes(&["application/x-ndjson"]), 201, Out::Json("Snapshot")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/restoreJobs", "listRestoreJobs", "Restore jobs", true, In::Nothing, 200, Out::Json("RestoreJobList")),
    Op("POST", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/restoreJobs", "createRestoreJob", "Request a restore", true, In::Json("NewRestoreJob"), 200, Out::Json("RestoreJobList")),
    Op("GET", "/api/public/v1.0/groups/{group_id}/clusters/{cluster_id}/restoreJobs/{job_id}", "getRestoreJob", "One restore job", true, In::Nothing, 200, Out::Json("RestoreJob")),
    Op("GET", "/backup/restore/{cluster_id}/{job_id}/{token}", "downloadRestore", "The restore's data (one-time link, no digest auth)", false, In::Nothing, 200, Out::Bytes("application/octet-stream")),
    Op("HEAD", "/backup/restore/{cluster_id}/{job_id}/{token}", "headRestore", "The restore's headers; the link stays unused", false, In::Nothing, 200, Out::Empty),
    Op("GET", "/api/public/v1.0/health", "healthDetail", "The health check in detail (global roles)", true, In::Nothing, 200, Out::Json("Health")),
    Op("GET", "/api/public/v1.0/openapi.json", "openapi", "This document", true, In::Nothing, 200, Out::Json("Any")),
    Op("GET", "/health", "health", "The last health check (no auth)", false, In::Nothing, 200, Out::Json("Health")),
    Op("GET", "/ready", "ready", "Readiness (no auth)", false, In::Nothing, 200, Out::Json("Ready")),
    Op("GET", "/metrics", "metrics", "Prometheus metrics (no auth)", false, In::Nothing, 200, Out::Bytes("text/plain")),
];

/// The `links` of an operation's success answer: the stateful chain group -> cluster ->
/// backup config -> encryption key.
fn links(id: &str) -> Option<Value> {
    let config =
        json!({"group_id": "$response.body#/groupId", "cluster_id": "$response.body#/clusterId"});
    Some(match id {
        "createGroup" => json!({
            "RegisterCluster": {"operationId": "registerCluster", "parameters": {"group_id": "$response.body#/id"}},
            "GetGroup": {"operationId": "getGroup", "parameters": {"group_id": "$response.body#/id"}},
        }),
        "registerCluster" => json!({
            "GetBackupConfig": {"operationId": "getBackupConfig", "parameters": {"group_id": "$response.body#/groupId", "cluster_id": "$response.body#/id"}},
            "PatchBackupConfig": {"operationId": "patchBackupConfig", "parameters": {"group_id": "$response.body#/groupId", "cluster_id": "$response.body#/id"}},
        }),
        "getBackupConfig" | "patchBackupConfig" => json!({
            "PatchBackupConfig": {"operationId": "patchBackupConfig", "parameters": config},
            "GetEncryptionKey": {"operationId": "getEncryptionKey", "parameters": config},
            "RotateEncryptionKey": {"operationId": "rotateEncryptionKey", "parameters": config},
            "ListEncryptionKeys": {"operationId": "listEncryptionKeys", "parameters": config},
        }),
        _ => return None,
    })
}

/// The JSON Schemas of the bodies, by name (`#/components/schemas/<name>`).
fn schemas() -> Value {
    let links = json!({"type": "array", "items": {"$ref": "#/components/schemas/Link"}});
    let s = json!({"type": "string"});
    let sn = json!({"type": ["string", "null"]});
    let i = json!({"type": "integer"});
    let b = json!({"type": "boolean"});
    let obj = |required: &[&str], props: Value| {
        let mut props = props;
        props["links"] = links.clone();
        json!({"type": "object", "required": required, "properties": props})
    };
    let list = |item: &str| {
        json!({"type": "object", "required": ["results", "totalCount", "links"], "properties": {
            "results": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "totalCount": {"type": "integer", "minimum": 0},
            "links": links,
        }})
    };
    let days = json!({"type": ["integer", "null"], "minimum": 0, "maximum": 3650});
    json!({
        "Any": {},
        "Link": {"type": "object", "required": ["rel", "href"], "properties": {"rel": s, "href": s}},
        "Error": {"type": "object", "required": ["error", "reason"], "properties": {
            "error": i, "reason": s, "detail": s, "errorCode": s, "parameters": {"type": "array"}}},
        "Group": obj(&["id", "name", "links"], json!({"id": s, "name": s, "orgId": s, "created": s, "clusterCount": i})),
        "GroupList": list("Group"),
        "NewGroup": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64}, "orgId": s}},
        "Cluster": obj(&["id", "groupId", "clusterName", "typeName", "links"], json!({
            "id": s, "groupId": s, "clusterName": s, "typeName": s, "replicaSetName": s, "shardName": s,
            "parentClusterId": s, "parts": {"type": "array"}})),
        "ClusterList": list("Cluster"),
        "NewCluster": {"type": "object", "required": ["clusterName", "typeName"], "additionalProperties": false, "properties": {
            "clusterName": {"type": "string", "minLength": 1, "maxLength": 64},
            "typeName": {"enum": ["REPLICA_SET", "SHARDED_REPLICA_SET"]},
            "replicaSetName": s,
            "shards": {"type": "array", "maxItems": 4, "items": {"type": "object", "required": ["shardName", "replicaSetName"],
                "additionalProperties": false, "properties": {"shardName": s, "replicaSetName": s}}},
            "configServerReplicaSet": s}},
        "BackupConfig": obj(&["groupId", "clusterId", "statusName", "encryptionEnabled", "links"], json!({
            "groupId": s, "clusterId": s, "statusName": s, "encryptionEnabled": b, "storageEngineName": s,
            "sslEnabled": b, "authMechanismName": s, "encryptionKeyRotationPeriodDays": i, "retiredKeyDestroyAfterDays": i,
            "lastEncryptionKeyRotation": sn, "nextEncryptionKeyRotation": sn, "encryptionKeyStatus": sn, "encryptionKeyError": sn})),
        "BackupConfigList": list("BackupConfig"),
        "BackupConfigPatch": {"type": "object", "additionalProperties": false, "properties": {
            "statusName": {"enum": ["STARTED", "STOPPED", "TERMINATING", null]},
            "encryptionEnabled": {"type": ["boolean", "null"]},
            "encryptionKeyRotationPeriodDays": days, "retiredKeyDestroyAfterDays": days}},
        "EncryptionKey": obj(&["clusterId", "groupId", "links"], json!({
            "clusterId": s, "groupId": s, "encryptionKeyUUID": s, "parts": {"type": "array"}})),
        "KeyHistoryEntry": obj(&["encryptionKeyUUID"], json!({"encryptionKeyUUID": s, "rotationType": s})),
        "KeyHistoryList": list("KeyHistoryEntry"),
        "ReencryptionJob": obj(&["id", "clusterId", "groupId", "statusName", "links"], json!({
            "id": s, "clusterId": s, "groupId": s, "statusName": {"enum": ["RUNNING", "FINISHED", "FAILED"]}})),
        "ReencryptionJobList": list("ReencryptionJob"),
        "ReencryptionStarted": {"anyOf": [{"$ref": "#/components/schemas/ReencryptionJob"}, {"$ref": "#/components/schemas/ReencryptionJobList"}]},
        "Event": obj(&["id", "created", "eventTypeName", "groupId", "links"], json!({
            "id": s, "created": s, "eventTypeName": s, "groupId": s})),
        "EventList": list("Event"),
        "Snapshot": obj(&["id", "groupId", "clusterId", "links"], json!({
            "id": s, "groupId": s, "clusterId": s, "complete": b, "doNotDelete": b, "kind": {"enum": ["tree", "stream"]},
            "parts": {"type": "array"}})),
        "SnapshotList": list("Snapshot"),
        "SnapshotPatch": {"type": "object", "additionalProperties": false, "properties": {
            "expires": {"type": ["string", "null"], "format": "date-time"}, "doNotDelete": b}},
        "VerifyReport": {"type": "object", "required": ["snapshotId", "ok"], "properties": {"snapshotId": s, "ok": b, "damaged": {"type": "array"}}},
        "UploadSession": obj(&["id", "groupId", "clusterId", "links"], json!({"id": s, "groupId": s, "clusterId": s, "chunkIdKey": s})),
        "ChunkIdsAnswer": {"type": "object", "required": ["known", "missing"], "properties": {"known": i, "missing": {"type": "array", "items": s}}},
        "ChunksAnswer": {"type": "object", "required": ["received", "stored", "storedBytes"], "properties": {"received": i, "stored": i, "storedBytes": i}},
        "UploadParent": {"type": "object", "required": ["snapshot", "entries"], "properties": {
            "snapshot": s, "source": sn, "entries": {"type": "array", "items": {"type": "object"}}}},
        "RestoreJob": obj(&["id", "groupId", "clusterId", "snapshotId", "links"], json!({
            "id": s, "groupId": s, "clusterId": s, "snapshotId": s, "statusName": s, "delivery": {"type": "object"}})),
        "RestoreJobList": list("RestoreJob"),
        "NewRestoreJob": {"type": "object", "required": ["snapshotId"], "additionalProperties": false, "properties": {"snapshotId": s}},
        "Health": {"type": "object", "required": ["status"], "properties": {"status": s}},
        "Ready": {"type": "object", "required": ["ready"], "properties": {"ready": b, "reason": s}},
    })
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn operation(op: &Op) -> Value {
    let Op(_, path, id, summary, auth, input, status, out) = *op;
    let mut params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}}))
        .collect();
    if matches!(out, Out::Json(s) if s.ends_with("List")) && op.0 == "GET" {
        for (name, max) in [("pageNum", None), ("itemsPerPage", Some(500))] {
            let mut schema = json!({"type": "integer", "minimum": 1});
            if let Some(max) = max {
                schema["maximum"] = json!(max);
            }
            params.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
        }
    }
    // The one operation with query parameters of its own (besides list paging).
    if id == "getUploadParent" {
        for name in ["source", "snapshot"] {
            params.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}}));
        }
    }
    let mut ok = json!({"description": "success"});
    match out {
        Out::Json(name) => ok["content"] = json!({"application/json": {"schema": reference(name)}}),
        Out::Bytes(ty) => {
            ok["content"] = json!({ty: {"schema": {"type": "string", "format": "binary"}}})
        }
        Out::Empty => {}
    }
    if let Some(l) = links(id) {
        ok["links"] = l;
    }
    let mut o = json!({
        "operationId": id,
        "summary": summary,
        "parameters": params,
        "responses": {
            status.to_string(): ok,
            "default": {"description": "an error (docs/api.md, \"Errors\")",
                "content": {"application/json": {"schema": reference("Error")}}},
        },
    });
    if id == "getUploadParent" {
        o["responses"]["204"] = json!({"description": "no parent: every file is read"});
    }
    if !auth {
        o["security"] = json!([]);
    }
    match input {
        In::Nothing => {}
        In::Json(name) => {
            o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": reference(name)}}});
        }
        In::Bytes(types) => {
            let content: Map<String, Value> = types
                .iter()
                .map(|t| {
                    (
                        t.to_string(),
                        json!({"schema": {"type": "string", "format": "binary"}}),
                    )
                })
                .collect();
            o["requestBody"] = json!({"required": true, "content": content});
        }
    }
    o
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let entry = paths.entry(op.1).or_insert_with(|| json!({}));
        entry[op.0.to_ascii_lowercase()] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Headlock API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Ops Manager public API v1.0 conventions and Headlock's extensions; see docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"digest": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"digest": {"type": "http", "scheme": "digest"}},
            "schemas": schemas(),
        },
    })
}

/// The document as checked in under docs/: pretty JSON with a final newline.
pub fn render() -> String {
    let mut s = serde_json::to_string_pretty(&document()).expect("a JSON value renders");
    s.push('\n');
    s
}

/// Compares a router's route table with the document's operations: `Err` names every
/// route the document lacks and every operation no route serves.
pub fn check(table: &[(Method, String)]) -> Result<(), String> {
    let described: std::collections::BTreeSet<(String, String)> = OPS
        .iter()
        .map(|o| (o.0.to_string(), o.1.to_string()))
        .collect();
    let mounted: std::collections::BTreeSet<(String, String)> = table
        .iter()
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect();
    let missing: Vec<_> = mounted.difference(&described).collect();
    let extra: Vec<_> = described.difference(&mounted).collect();
    if missing.is_empty() && extra.is_empty() && described.len() == OPS.len() {
        Ok(())
    } else {
        Err(format!(
            "routes missing from the OpenAPI document: {missing:?}; described but not mounted: {extra:?}"
        ))
    }
}

/// `GET /api/public/v1.0/openapi.json`.
pub(crate) async fn serve() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// docs/openapi.json is what the code generates; with `HEADLOCK_WRITE_OPENAPI=1` this
    /// test rewrites it instead.
    #[test]
    fn docs_openapi_json_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let now = super::render();
        if std::env::var_os("HEADLOCK_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &now).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == now,
            "docs/openapi.json is stale: run HEADLOCK_WRITE_OPENAPI=1 cargo test -p headlock-api --lib openapi"
        );
    }
}
