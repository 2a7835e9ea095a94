//! The Ops Manager API end to end: the real binary, real HTTP, real digest auth (curl),
//! real SQLite and the embedded KMIP server over mutual TLS.

mod common;

use std::collections::HashSet;

use common::{World, assert_error};
use serde_json::json;

fn links_by_rel(v: &serde_json::Value) -> Vec<(String, String)> {
    v["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            (
                l["rel"].as_str().unwrap().to_string(),
                l["href"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn encryption_key_endpoints_answer_exactly_as_documented() {
    let w = World::new();
    let g = w.group("prod");
    let c = w.replica_set(&g, "rs0");
    let base = &w.server.url;

    // Backup config of a new cluster.
    let cfg = w
        .admin
        .expect(w.admin.get(&format!("/groups/{g}/backupConfigs/{c}")), 200);
    let mut keys: Vec<&str> = cfg
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "authMechanismName",
            "clusterId",
            "encryptionEnabled",
            "encryptionKeyError",
            "encryptionKeyRotationPeriodDays",
            "encryptionKeyStatus",
            "excludedNamespaces",
            "groupId",
            "includedNamespaces",
            "lastEncryptionKeyRotation",
            "links",
            "nextEncryptionKeyRotation",
            "retiredKeyDestroyAfterDays",
            "sslEnabled",
            "statusName",
            "storageEngineName"
        ]
    );
    assert_eq!(cfg["statusName"], "INACTIVE");
    assert_eq!(cfg["encryptionEnabled"], false);
    assert_eq!(cfg["storageEngineName"], "WIRED_TIGER");
    assert_eq!(cfg["authMechanismName"], "NONE");
    assert_eq!(
        links_by_rel(&cfg),
        vec![
            (
                "self".into(),
                format!("{base}/api/public/v1.0/groups/{g}/backupConfigs/{c}")
            ),
            (
                "http://mms.mongodb.com/cluster".into(),
                format!("{base}/api/public/v1.0/groups/{g}/clusters/{c}")
            ),
            (
                "http://mms.mongodb.com/group".into(),
                format!("{base}/api/public/v1.0/groups/{g}")
            ),
        ]
    );

    // Encryption off: both endpoints refuse with a clear code.
    let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");
    assert_error(
        &w.admin.put(&path),
        409,
        "CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED",
    );
    assert_error(
        &w.admin.get(&path),
        409,
        "CANNOT_GET_KEY_ENCRYPTION_DISABLED",
    );

    let cfg = w.enable_encryption(&g, &c);
    assert_eq!(cfg["encryptionEnabled"], true);

    let key = w.admin.expect(w.admin.get(&path), 200);
    let mut fields: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["clusterId", "encryptionKeyUUID", "groupId", "links"]
    );
    assert_eq!(key["clusterId"], c.as_str());
    assert_eq!(key["groupId"], g.as_str());
    let first = key["encryptionKeyUUID"].as_str().unwrap().to_string();
    assert!(!first.is_empty());
    assert_eq!(
        links_by_rel(&key),
        vec![
            (
                "self".into(),
                format!("{base}/api/public/v1.0/groups/{g}/backupConfigs/{c}/encryptionKey")
            ),
            (
                "http://mms.mongodb.com/cluster".into(),
                format!("{base}/api/public/v1.0/groups/{g}/clusters/{c}")
            ),
            (
                "http://mms.mongodb.com/group".into(),
                format!("{base}/api/public/v1.0/groups/{g}")
            ),
        ]
    );

    // PUT: 201, and no key id in the body.
    let r = w.admin.put(&path);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        !r.body.contains(&first),
        "the body must not show a key id: {}",
        r.body
    );
    let second = w.key_of(&g, &c);
    assert_ne!(first, second);
    let r = w.admin.put(&path);
    assert_eq!(r.status, 201);
    let third = w.key_of(&g, &c);
    assert!(![&first, &second].contains(&&third));

    // The rotation is in the audit trail, as Ops Manager names it.
    let events = w
        .admin
        .expect(w.admin.get(&format!("/groups/{g}/events")), 200);
    let rotations: Vec<_> = events["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventTypeName"] == "RS_ROTATE_MASTER_KEY_AUDIT")
        .collect();
    assert_eq!(rotations.len(), 2, "{events}");
    assert_eq!(rotations[0]["oldEncryptionKeyUUID"], second.as_str());
    assert_eq!(rotations[0]["newEncryptionKeyUUID"], third.as_str());
    assert_eq!(rotations[0]["username"], "admin");
    assert_eq!(rotations[0]["remoteAddress"], "127.0.0.1");
    assert_eq!(rotations[0]["outcome"], "SUCCESS");
    // Its self link serves the same event.
    let href = rotations[0]["links"][0]["href"].as_str().unwrap();
    let path = href
        .strip_prefix(&format!("{base}/api/public/v1.0"))
        .unwrap();
    let one = w.admin.expect(w.admin.get(path), 200);
    assert_eq!(&one, rotations[0]);
    assert_error(
        &w.admin
            .get(&format!("/groups/{g}/events/{}", "0".repeat(24))),
        404,
        "EVENT_NOT_FOUND",
    );
}

#[test]
fn pretty_and_envelope_work_on_both_endpoints() {
    let w = World::new();
    let g = w.group("pretty");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");

    let r = w.admin.get(&format!("{path}?pretty=true"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\n  \""), "pretty-printed: {}", r.body);

    let r = w.admin.get(&format!("{path}?envelope=true"));
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], 200);
    assert_eq!(v["content"]["clusterId"], c.as_str());

    let r = w.admin.put(&format!("{path}?envelope=true"));
    assert_eq!(
        r.status, 200,
        "envelope answers 200 and carries the real status"
    );
    assert_eq!(r.json()["status"], 201);

    let r = w.admin.get(&format!(
        "/groups/{g}/backupConfigs/{}/encryptionKey?envelope=true",
        "0".repeat(24)
    ));
    assert_eq!(r.status, 404);
}

#[test]
fn errors_use_ops_manager_codes() {
    let w = World::new();
    let g = w.group("errors");
    let other = w.group("other");
    let c = w.replica_set(&g, "rs0");
    let c_other = w.replica_set(&other, "rs1");
    w.enable_encryption(&g, &c);

    assert_error(
        &w.admin
            .get("/groups/not-an-id/backupConfigs/x/encryptionKey"),
        404,
        "INVALID_GROUP_ID",
    );
    assert_error(
        &w.admin
            .get(&format!("/groups/{g}/backupConfigs/nope/encryptionKey")),
        404,
        "INVALID_CLUSTER_ID",
    );
    let unknown_group = "5196d3628d022db4cbc26d9e";
    let v = assert_error(
        &w.admin.get(&format!(
            "/groups/{unknown_group}/backupConfigs/{c}/encryptionKey"
        )),
        404,
        "GROUP_NOT_FOUND",
    );
    assert_eq!(v["parameters"], json!([unknown_group]));
    // A cluster of another group is not found in this one.
    let v = assert_error(
        &w.admin.put(&format!(
            "/groups/{g}/backupConfigs/{c_other}/encryptionKey"
        )),
        404,
        "CLUSTER_NOT_FOUND",
    );
    assert_eq!(v["parameters"], json!([c_other, g]));
    assert_eq!(
        v["detail"],
        format!("No cluster with ID {c_other} exists in group {g}.")
    );
    assert_eq!(v["reason"], "Not Found");

    // A user of another group: NOT_IN_GROUP; a reader rotating: 403.
    let stranger = w.user("stranger", "GROUP_OWNER", Some(&other));
    assert_error(
        &stranger.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey")),
        401,
        "NOT_IN_GROUP",
    );
    assert_error(
        &stranger.get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey")),
        401,
        "NOT_IN_GROUP",
    );
    let reader = w.user("reader", "GROUP_READ_ONLY", Some(&g));
    let before = w.key_of(&g, &c);
    assert_eq!(
        reader
            .get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
            .status,
        200
    );
    assert_error(
        &reader.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey")),
        403,
        "USER_UNAUTHORIZED",
    );
    assert_eq!(
        w.key_of(&g, &c),
        before,
        "a refused rotation changes nothing"
    );
    let backup_admin = w.user("backupadmin", "GROUP_BACKUP_ADMIN", Some(&g));
    assert_eq!(
        backup_admin
            .put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
            .status,
        201
    );

    // Wrong key: 401 with a digest challenge, every time.
    let mut wrong = w.admin.clone();
    wrong.key = "00000000-0000-4000-8000-000000000000".into();
    for _ in 0..2 {
        let r = wrong.get(&format!("/groups/{g}"));
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], 401);
    }

    // Bad bodies: unknown fields and malformed JSON are 400.
    let r = w.admin.patch(
        &format!("/groups/{g}/backupConfigs/{c}"),
        r#"{"noSuchField":1}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = w.admin.post("/groups", "{not json");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = w.admin.patch(
        &format!("/groups/{g}/backupConfigs/{c}"),
        &format!(r#"{{"groupId":"{other}"}}"#),
    );
    assert_error(&r, 400, "GROUP_MISMATCH");
    let r = w.admin.get("/no/such/thing");
    assert_error(&r, 404, "RESOURCE_NOT_FOUND");
    let r = w
        .admin
        .get(&format!("/groups/{g}/clusters?itemsPerPage=501"));
    assert_eq!(r.status, 400);
}

#[test]
fn sharded_cluster_rotates_per_part_and_as_a_whole() {
    let w = World::new();
    let g = w.group("shop");
    let body = r#"{"clusterName":"shop","typeName":"SHARDED_REPLICA_SET",
        "shards":[{"shardName":"shop-0","replicaSetName":"shop-0"},{"shardName":"shop-1","replicaSetName":"shop-1"}],
        "configServerReplicaSet":"shop-config"}"#;
    let whole = w
        .admin
        .expect(w.admin.post(&format!("/groups/{g}/clusters"), body), 201);
    let whole_id = whole["id"].as_str().unwrap().to_string();
    assert_eq!(whole["typeName"], "SHARDED_REPLICA_SET");

    // N + 2 entities, as in Ops Manager.
    let all = w
        .admin
        .expect(w.admin.get(&format!("/groups/{g}/clusters")), 200);
    assert_eq!(all["totalCount"], 4);
    let parts = w.admin.expect(
        w.admin
            .get(&format!("/groups/{g}/clusters?parentClusterId={whole_id}")),
        200,
    );
    assert_eq!(parts["totalCount"], 3);
    let parts: Vec<serde_json::Value> = parts["results"].as_array().unwrap().clone();
    let shard_ids: Vec<String> = parts
        .iter()
        .filter(|p| p["typeName"] == "REPLICA_SET")
        .map(|p| {
            assert!(p["shardName"].as_str().unwrap().starts_with("shop-"));
            p["id"].as_str().unwrap().to_string()
        })
        .collect();
    let config_id = parts
        .iter()
        .find(|p| p["typeName"] == "CONFIG_SERVER_REPLICA_SET")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(shard_ids.len(), 2);

    // A shard's config cannot be changed on its own; the error names the whole cluster.
    let r = w.admin.patch(
        &format!("/groups/{g}/backupConfigs/{}", shard_ids[0]),
        r#"{"encryptionEnabled":true}"#,
    );
    let v = assert_error(&r, 409, "CANNOT_MODIFY_SHARD_BACKUP_CONFIG");
    assert!(v["detail"].as_str().unwrap().contains(&whole_id), "{v}");

    // Enabling on the whole cluster applies to every part, each with its own key.
    w.enable_encryption(&g, &whole_id);
    let mut keys = HashSet::new();
    for part in shard_ids.iter().chain([&config_id]) {
        let cfg = w.admin.expect(
            w.admin.get(&format!("/groups/{g}/backupConfigs/{part}")),
            200,
        );
        assert_eq!(cfg["encryptionEnabled"], true);
        assert!(keys.insert(w.key_of(&g, part)));
    }

    // One PUT per shard and one for the config server replica set.
    let shard0_before = w.key_of(&g, &shard_ids[0]);
    let shard1_before = w.key_of(&g, &shard_ids[1]);
    assert_eq!(
        w.admin
            .put(&format!(
                "/groups/{g}/backupConfigs/{}/encryptionKey",
                shard_ids[0]
            ))
            .status,
        201
    );
    assert_ne!(w.key_of(&g, &shard_ids[0]), shard0_before);
    assert_eq!(
        w.key_of(&g, &shard_ids[1]),
        shard1_before,
        "other shards are untouched"
    );
    let config_before = w.key_of(&g, &config_id);
    assert_eq!(
        w.admin
            .put(&format!(
                "/groups/{g}/backupConfigs/{config_id}/encryptionKey"
            ))
            .status,
        201
    );
    assert_ne!(w.key_of(&g, &config_id), config_before);

    // One PUT on the whole cluster rotates every part (extension), and GET on the whole
    // cluster lists each part's key.
    let before: Vec<String> = shard_ids
        .iter()
        .chain([&config_id])
        .map(|p| w.key_of(&g, p))
        .collect();
    assert_eq!(
        w.admin
            .put(&format!(
                "/groups/{g}/backupConfigs/{whole_id}/encryptionKey"
            ))
            .status,
        201
    );
    let after: Vec<String> = shard_ids
        .iter()
        .chain([&config_id])
        .map(|p| w.key_of(&g, p))
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a);
    }
    let v = w.admin.expect(
        w.admin.get(&format!(
            "/groups/{g}/backupConfigs/{whole_id}/encryptionKey"
        )),
        200,
    );
    let listed: HashSet<String> = v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["encryptionKeyUUID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, after.into_iter().collect());
}

#[test]
fn parallel_rotations_are_all_accounted_for() {
    let w = World::new();
    let g = w.group("busy");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    let initial = w.key_of(&g, &c);
    let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");

    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let api = w.admin.clone();
                let path = path.clone();
                s.spawn(move || api.put(&path).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|s| **s == 201).count();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(ok >= 1, "{statuses:?}");

    // Every successful rotation is in the audit trail exactly once, and they form one
    // unbroken chain from the initial key to the current one.
    let events = w.admin.expect(
        w.admin.get(&format!("/groups/{g}/events?itemsPerPage=500")),
        200,
    );
    let rotations: Vec<(String, String)> = events["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventTypeName"] == "RS_ROTATE_MASTER_KEY_AUDIT" && e["outcome"] == "SUCCESS")
        .map(|e| {
            (
                e["oldEncryptionKeyUUID"].as_str().unwrap().to_string(),
                e["newEncryptionKeyUUID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rotations.len(), ok);
    let mut current = initial;
    for (old, new) in rotations.iter().rev() {
        assert_eq!(*old, current, "each rotation applies to the key it read");
        current = new.clone();
    }
    assert_eq!(
        w.key_of(&g, &c),
        current,
        "the last rotation's key is current"
    );
}

#[test]
fn state_survives_a_restart() {
    let mut w = World::new();
    let g = w.group("durable");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    assert_eq!(
        w.admin
            .put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
            .status,
        201
    );
    let key = w.key_of(&g, &c);

    w.server.restart();
    w.admin.base = format!("{}/api/public/v1.0", w.server.url);
    assert_eq!(w.key_of(&g, &c), key);
    assert_eq!(
        w.admin
            .put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
            .status,
        201
    );
    assert_ne!(w.key_of(&g, &c), key);
    let groups = w.admin.expect(w.admin.get("/groups"), 200);
    assert_eq!(groups["totalCount"], 1);
    assert_eq!(groups["results"][0]["name"], "durable");
    assert_eq!(groups["results"][0]["clusterCount"], 1);
}

#[test]
fn groups_and_clusters_follow_ops_manager() {
    let w = World::new();
    let v = w
        .admin
        .expect(w.admin.post("/groups", r#"{"name":"prod"}"#), 201);
    let g = v["id"].as_str().unwrap().to_string();
    assert_eq!(g.len(), 24);
    assert!(
        g.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(v["name"], "prod");
    assert_eq!(v["clusterCount"], 0);
    let by_name = w.admin.expect(w.admin.get("/groups/byName/prod"), 200);
    assert_eq!(by_name["id"], g.as_str());
    assert_error(
        &w.admin.post("/groups", r#"{"name":"prod"}"#),
        409,
        "DUPLICATE_GROUP_NAME",
    );
    assert_error(&w.admin.get("/groups/byName/nope"), 404, "GROUP_NOT_FOUND");

    // Paging: previous/next links and totalCount.
    for i in 0..3 {
        w.group(&format!("g{i}"));
    }
    let page = w
        .admin
        .expect(w.admin.get("/groups?pageNum=2&itemsPerPage=1"), 200);
    assert_eq!(page["totalCount"], 4);
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    let rels: Vec<&str> = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(rels, ["self", "previous", "next"]);

    let c = w.replica_set(&g, "rs0");
    let cl = w
        .admin
        .expect(w.admin.get(&format!("/groups/{g}/clusters/{c}")), 200);
    assert_eq!(cl["clusterName"], "rs0");
    assert_eq!(cl["typeName"], "REPLICA_SET");
    assert_eq!(cl["replicaSetName"], "rs0");
    assert_error(
        &w.admin.post(
            &format!("/groups/{g}/clusters"),
            r#"{"clusterName":"rs0","typeName":"REPLICA_SET"}"#,
        ),
        409,
        "DUPLICATE_CLUSTER_NAME",
    );
    assert_eq!(
        w.admin.delete(&format!("/groups/{g}/clusters/{c}")).status,
        202
    );
    assert_error(
        &w.admin.get(&format!("/groups/{g}/clusters/{c}")),
        404,
        "CLUSTER_NOT_FOUND",
    );

    // Status lifecycle as clients drive it.
    let c = w.replica_set(&g, "rs1");
    let p = format!("/groups/{g}/backupConfigs/{c}");
    assert_eq!(
        w.admin
            .expect(w.admin.patch(&p, r#"{"statusName":"STARTED"}"#), 200)["statusName"],
        "STARTED"
    );
    assert_error(
        &w.admin.patch(&p, r#"{"statusName":"TERMINATING"}"#),
        409,
        "CANNOT_TERMINATE_BACKUP_INVALID_STATE",
    );
    assert_eq!(
        w.admin
            .expect(w.admin.patch(&p, r#"{"statusName":"STOPPED"}"#), 200)["statusName"],
        "STOPPED"
    );
    assert_eq!(
        w.admin
            .expect(w.admin.patch(&p, r#"{"statusName":"TERMINATING"}"#), 200)["statusName"],
        "INACTIVE"
    );
    // Clients that send every field, with nulls.
    let all = r#"{"groupId":null,"clusterId":null,"statusName":"STARTED","encryptionEnabled":false,"storageEngineName":"WIRED_TIGER",
        "sslEnabled":false,"excludedNamespaces":null,"includedNamespaces":null,"authMechanismName":"NONE"}"#;
    assert_eq!(
        w.admin.expect(w.admin.patch(&p, all), 200)["statusName"],
        "STARTED"
    );

    // Namespaces: 1 to 255 bytes each, no control characters; a refused list changes
    // nothing.
    let kept = w.admin.expect(
        w.admin
            .patch(&p, r#"{"excludedNamespaces":["logs","app.sessions"]}"#),
        200,
    );
    assert_eq!(kept["excludedNamespaces"], json!(["logs", "app.sessions"]));
    let long = format!(r#"{{"excludedNamespaces":["{}"]}}"#, "a".repeat(256));
    for body in [
        r#"{"excludedNamespaces":["app\nFORGED LOG LINE"]}"#,
        r#"{"excludedNamespaces":["app\u001b[2J"]}"#,
        r#"{"includedNamespaces":["a\u0000b"]}"#,
        r#"{"excludedNamespaces":[""]}"#,
        long.as_str(),
    ] {
        assert_error(&w.admin.patch(&p, body), 400, "INVALID_ATTRIBUTE");
    }
    assert_eq!(
        w.admin.expect(w.admin.get(&p), 200)["excludedNamespaces"],
        json!(["logs", "app.sessions"])
    );
}

#[test]
fn key_history_lists_every_master_key_newest_first_with_its_kmip_state() {
    let w = World::new();
    let g = w.group("history");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    let first = w.key_of(&g, &c);
    for _ in 0..2 {
        assert_eq!(
            w.admin
                .put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"))
                .status,
            201
        );
    }
    let current = w.key_of(&g, &c);
    let h = w.admin.expect(
        w.admin
            .get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKeys")),
        200,
    );
    assert_eq!(h["totalCount"], 3, "{h}");
    let keys = h["results"].as_array().unwrap();
    assert_eq!(keys[0]["encryptionKeyUUID"], current.as_str());
    assert_eq!(keys[0]["state"], "Active");
    assert_eq!(keys[0]["rotationType"], "MANUAL");
    assert_eq!(keys[0]["dataKeyCount"], 1);
    assert!(keys[0]["retired"].is_null());
    assert_eq!(keys[0]["requestedBy"], "admin");
    for old in &keys[1..] {
        assert_eq!(old["state"], "Deactivated", "{old}");
        assert_eq!(
            old["dataKeyCount"], 0,
            "after a rotation an old key protects nothing"
        );
        assert!(old["retired"].is_string());
    }
    assert_eq!(keys[2]["encryptionKeyUUID"], first.as_str());
    assert_eq!(keys[2]["rotationType"], "INITIAL");
    // Paging like every list.
    let page = w.admin.expect(
        w.admin.get(&format!(
            "/groups/{g}/backupConfigs/{c}/encryptionKeys?itemsPerPage=1&pageNum=3"
        )),
        200,
    );
    assert_eq!(page["results"][0]["encryptionKeyUUID"], first.as_str());
    let reader = w.user("historian", "GROUP_READ_ONLY", Some(&g));
    assert_eq!(
        reader
            .get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKeys"))
            .status,
        200
    );
}
