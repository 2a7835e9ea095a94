//! Several `headlock serve` nodes on one PostgreSQL database, one S3 bucket (moto) and
//! one KMIP server (`headlock kmip-server`, a separate process), as in production:
//! parallel rotations, backups and restores across the nodes; a node killed with
//! SIGKILL in the middle of that traffic; two KMIP servers with the first stopped.
//!
//! PostgreSQL and moto come from `scripts/postgres.sh` and `scripts/moto.sh` (through
//! testkit): every test gets its own database and bucket, so the tests run in parallel.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Api, Deployment, noise, restore, upload};
use serde_json::Value;

/// The successful rotations of a cluster in the audit trail, oldest first, checked to
/// form one unbroken chain from `initial`; returns them (old, new).
fn rotation_chain(api: &Api, g: &str, c: &str, initial: &str) -> Vec<(String, String)> {
    let mut rotations: Vec<(String, String)> = api
        .events_of(g, "RS_ROTATE_MASTER_KEY_AUDIT")
        .iter()
        .filter(|e| e["outcome"] == "SUCCESS" && e["clusterId"] == c)
        .map(|e| {
            (
                e["oldEncryptionKeyUUID"].as_str().unwrap().to_string(),
                e["newEncryptionKeyUUID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rotations.reverse();
    let mut current = initial.to_string();
    let mut seen = HashSet::new();
    for (old, new) in &rotations {
        assert_eq!(*old, current, "each rotation applies to the key it read");
        assert!(seen.insert(new.clone()), "key {new} made current twice");
        current = new.clone();
    }
    rotations
}

/// Reads the current key of a cluster from a node once its read cache (1 s) has
/// caught up with the other node's writes.
fn settled_key(api: &Api, g: &str, c: &str) -> String {
    std::thread::sleep(Duration::from_millis(1100));
    api.current_key(g, c)
}

#[test]
fn two_nodes_serve_parallel_rotations_backups_and_restores_as_one() {
    let deployment = Deployment::new(1);
    let a = deployment.node("a");
    let b = deployment.node("b");
    let (api_a, api_b) = (deployment.api(&a), deployment.api(&b));
    let g = api_a.create_group("two-nodes");
    let clusters: Vec<String> = (0..3)
        .map(|i| {
            let api = if i % 2 == 0 { &api_a } else { &api_b };
            api.create_encrypted_replica_set(&g, &format!("rs{i}"))
        })
        .collect();
    let initial: HashMap<String, String> = clusters
        .iter()
        .map(|c| (c.clone(), api_a.current_key(&g, c)))
        .collect();

    // Rotations of every cluster through both nodes at once, with backups beside them.
    const ROTATIONS_PER_NODE: usize = 4;
    let work = tempfile::tempdir().unwrap();
    let uploads: Mutex<Vec<(String, String, Vec<u8>)>> = Mutex::default();
    let statuses: Mutex<Vec<u16>> = Mutex::default();
    let (g_ref, uploads_ref, statuses_ref, work_dir) = (&g, &uploads, &statuses, work.path());
    std::thread::scope(|s| {
        for (ci, c) in clusters.iter().enumerate() {
            for (ni, api) in [&api_a, &api_b].into_iter().enumerate() {
                let (g, statuses) = (g_ref, statuses_ref);
                s.spawn(move || {
                    for _ in 0..ROTATIONS_PER_NODE {
                        let r = api.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"));
                        assert_eq!(r.status, 201, "PUT on node {ni}: {}", r.body);
                        statuses.lock().unwrap().push(r.status);
                    }
                });
                let (g, uploads, work) = (g_ref, uploads_ref, work_dir);
                s.spawn(move || {
                    for round in 0..2u64 {
                        let seed = (ci as u64) * 100 + (ni as u64) * 10 + round + 1;
                        let data = noise(300_000 + seed as usize * 1000, seed);
                        let file = work.join(format!("data-{seed}"));
                        std::fs::write(&file, &data).unwrap();
                        let snap = upload(api, g, c, &file, false)
                            .unwrap_or_else(|e| panic!("backup on node {ni}: {e:?}"));
                        uploads.lock().unwrap().push((
                            c.clone(),
                            snap["id"].as_str().unwrap().to_string(),
                            data,
                        ));
                    }
                });
            }
        }
    });
    let uploads = uploads.into_inner().unwrap();
    assert_eq!(
        statuses.lock().unwrap().len(),
        clusters.len() * 2 * ROTATIONS_PER_NODE
    );

    for c in &clusters {
        let chain = rotation_chain(&api_a, &g, c, &initial[c]);
        assert_eq!(
            chain.len(),
            2 * ROTATIONS_PER_NODE,
            "every rotation of {c} is in the audit trail exactly once"
        );
        let last = &chain.last().unwrap().1;
        assert_eq!(
            &settled_key(&api_a, &g, c),
            last,
            "node a: the last key is current"
        );
        assert_eq!(
            &api_b.current_key(&g, c),
            last,
            "node b: the last key is current"
        );
        let keys = api_b.key_history(&g, c);
        assert_eq!(keys.len(), 1 + 2 * ROTATIONS_PER_NODE);
        assert_eq!(keys[0]["encryptionKeyUUID"], last.as_str());
        assert!(
            keys[0]["dataKeyCount"].as_u64().unwrap() >= 1,
            "{}",
            keys[0]
        );
        for old in &keys[1..] {
            assert_eq!(
                old["dataKeyCount"], 0,
                "a retired key protects nothing: {old}"
            );
        }
    }
    // Every snapshot restores byte for byte, through either node, under the last key:
    // so every data key unwraps under it.
    assert_eq!(uploads.len(), clusters.len() * 2 * 2);
    for (i, (c, snap, data)) in uploads.iter().enumerate() {
        let api = if i % 2 == 0 { &api_b } else { &api_a };
        let (code, bytes) = restore(api, &g, c, snap);
        assert_eq!(code, 200, "restore of {snap}");
        assert!(
            bytes == *data,
            "snapshot {snap} of {c} restores byte for byte"
        );
    }
    assert!(a.log().contains("metadata store open"), "{}", a.log());
}

#[test]
fn a_node_killed_mid_traffic_loses_nothing_and_the_other_keeps_serving() {
    let deployment = Deployment::new(1);
    let mut a = deployment.node("a");
    let b = deployment.node("b");
    let (api_a, api_b) = (deployment.api(&a), deployment.api(&b));
    let g = api_a.create_group("killed");
    let clusters: Vec<String> = (0..2)
        .map(|i| api_b.create_encrypted_replica_set(&g, &format!("rs{i}")))
        .collect();
    let initial: HashMap<String, String> = clusters
        .iter()
        .map(|c| (c.clone(), api_b.current_key(&g, c)))
        .collect();

    let work = tempfile::tempdir().unwrap();
    let killed = AtomicBool::new(false);
    let acknowledged: Mutex<Vec<(String, String, Vec<u8>)>> = Mutex::default();
    let b_failures: Mutex<Vec<String>> = Mutex::default();
    let rotations_after_kill = std::sync::atomic::AtomicUsize::new(0);
    let (g_ref, killed_ref, acked_ref, failures_ref, after_ref, work_dir) = (
        &g,
        &killed,
        &acknowledged,
        &b_failures,
        &rotations_after_kill,
        work.path(),
    );
    std::thread::scope(|s| {
        for (ci, c) in clusters.iter().enumerate() {
            for (ni, api) in [&api_a, &api_b].into_iter().enumerate() {
                let (g, killed, b_failures, after) = (g_ref, killed_ref, failures_ref, after_ref);
                // Rotations until a few have gone through on b after the kill.
                s.spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while Instant::now() < deadline {
                        let was_killed = killed.load(Ordering::SeqCst);
                        if ni == 0 && was_killed {
                            return; // node a is gone
                        }
                        let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");
                        match api.try_call("PUT", &path, None) {
                            Ok(r) if r.status == 201 => {
                                if ni == 1
                                    && was_killed
                                    && after.fetch_add(1, Ordering::SeqCst) >= 6
                                {
                                    return;
                                }
                            }
                            Ok(r) if ni == 1 => b_failures
                                .lock()
                                .unwrap()
                                .push(format!("PUT {}: {}", r.status, r.body)),
                            Ok(_) => {}
                            Err(e) if ni == 1 => b_failures.lock().unwrap().push(e),
                            Err(_) => {}
                        }
                    }
                    if ni == 1 {
                        b_failures
                            .lock()
                            .unwrap()
                            .push("rotations never finished".into());
                    }
                });
                let (g, killed, acknowledged, b_failures, work) =
                    (g_ref, killed_ref, acked_ref, failures_ref, work_dir);
                s.spawn(move || {
                    for round in 0..6u64 {
                        let was_killed = killed.load(Ordering::SeqCst);
                        if ni == 0 && was_killed {
                            return;
                        }
                        let seed = (ci as u64) * 100 + (ni as u64) * 10 + round + 1;
                        let data = noise(2_000_000 + seed as usize, seed);
                        let file = work.join(format!("data-{seed}"));
                        std::fs::write(&file, &data).unwrap();
                        match upload(api, g, c, &file, false) {
                            Ok(snap) => acknowledged.lock().unwrap().push((
                                c.clone(),
                                snap["id"].as_str().unwrap().to_string(),
                                data,
                            )),
                            Err(e) if ni == 1 => {
                                b_failures.lock().unwrap().push(format!("backup: {e:?}"))
                            }
                            Err(_) => {}
                        }
                    }
                });
            }
        }
        // Kill node a once traffic is flowing.
        let (acknowledged, killed, a) = (acked_ref, killed_ref, &mut a);
        s.spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acknowledged.lock().unwrap().len() < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            a.kill();
            killed.store(true, Ordering::SeqCst);
        });
    });
    let failures = b_failures.into_inner().unwrap();
    assert!(failures.is_empty(), "node b failed requests: {failures:#?}");
    assert!(rotations_after_kill.load(Ordering::SeqCst) >= 6);

    // Node a comes back on its data directory (same node id) and finishes or undoes
    // whatever it had in flight; then both agree and nothing is half-done.
    a.start_again();
    let api_a = deployment.api(&a);
    let state_of = |uid: &str| {
        deployment.kmip[0].with_client(async |client| client.get_state(uid).await.unwrap())
    };
    for c in &clusters {
        // A rotation through each node goes through at once: no intent is stuck.
        for api in [&api_a, &api_b] {
            let r = api.put(&format!("/groups/{g}/backupConfigs/{c}/encryptionKey"));
            assert_eq!(r.status, 201, "{}", r.body);
        }
        let chain = rotation_chain(&api_a, &g, c, &initial[c]);
        let last = chain.last().unwrap().1.clone();
        assert_eq!(settled_key(&api_b, &g, c), last);
        assert_eq!(api_a.current_key(&g, c), last);
        // In the KMIP server: the current key is Active; every key it replaced is
        // Deactivated (revoked), every key an interrupted rotation made Destroyed.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut active = Vec::new();
            for (old, new) in &chain {
                for uid in [old, new] {
                    let state = state_of(uid);
                    if state == kmip::types::State::ACTIVE {
                        active.push(uid.clone());
                    }
                }
            }
            active.sort();
            active.dedup();
            if active == vec![last.clone()] || Instant::now() > deadline {
                assert_eq!(active, vec![last.clone()], "only the current key is active");
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for e in api_a.events_of(&g, "MASTER_KEY_RECONCILED") {
            if e["clusterId"] == c.as_str()
                && let Some(orphan) = e["newEncryptionKeyUUID"].as_str()
                && orphan != last
            {
                let state = state_of(orphan);
                assert_ne!(state, kmip::types::State::ACTIVE, "orphan {orphan} retired");
            }
        }
    }
    // Every acknowledged backup is there and restores byte for byte; no snapshot that
    // is listed is half-written.
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= 4, "{}", acknowledged.len());
    let by_id: HashMap<&str, &Vec<u8>> = acknowledged
        .iter()
        .map(|(_, id, data)| (id.as_str(), data))
        .collect();
    for c in &clusters {
        let listed = api_b.expect(
            api_b.get(&format!(
                "/groups/{g}/clusters/{c}/snapshots?itemsPerPage=500"
            )),
            200,
        );
        let listed: Vec<String> = listed["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        for (cc, id, _) in &acknowledged {
            if cc == c {
                assert!(listed.contains(id), "acknowledged snapshot {id} is listed");
            }
        }
        for id in &listed {
            let (code, bytes) = restore(&api_a, &g, c, id);
            assert_eq!(code, 200, "listed snapshot {id} restores");
            if let Some(data) = by_id.get(id.as_str()) {
                assert!(bytes == **data, "snapshot {id} restores byte for byte");
            }
        }
    }
}

#[test]
fn rotations_go_on_on_the_second_kmip_server_when_the_first_stops() {
    let mut deployment = Deployment::new(2);
    let node = deployment.node("solo");
    let api = deployment.api(&node);
    let g = api.create_group("failover");
    let c = api.create_encrypted_replica_set(&g, "rs0");
    let path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");
    let before = noise(400_000, 77);
    let file = node.data_dir.join("before");
    std::fs::write(&file, &before).unwrap();
    let snap_before = upload(&api, &g, &c, &file, false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..2 {
        assert_eq!(api.put(&path).status, 201);
    }
    let (first, second) = (
        deployment.kmip[0].addr.clone(),
        deployment.kmip[1].addr.clone(),
    );
    for key in api.key_history(&g, &c) {
        assert_eq!(key["kmipServer"], first.as_str(), "{key}");
    }

    deployment.kmip[0].kill();
    for _ in 0..3 {
        let r = api.put(&path);
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let keys = api.key_history(&g, &c);
    assert_eq!(keys.len(), 6);
    for key in &keys[..3] {
        assert_eq!(
            key["kmipServer"],
            second.as_str(),
            "made by the second server: {key}"
        );
    }
    // Snapshots from before and after the failover restore.
    let after = noise(300_000, 78);
    let file = node.data_dir.join("after");
    std::fs::write(&file, &after).unwrap();
    let snap_after = upload(&api, &g, &c, &file, false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(restore(&api, &g, &c, &snap_before), (200, before));
    assert_eq!(restore(&api, &g, &c, &snap_after), (200, after));

    // The health check in detail (authenticated) says which server is down, and the
    // node is still ready.
    let base = node.url.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let h = api.expect(api.get("/health"), 200);
        let servers = h["kmipServers"].as_array().cloned().unwrap_or_default();
        let down = servers
            .iter()
            .any(|s| s["server"] == first.as_str() && s["reachable"] == false);
        if down || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let servers = health["kmipServers"].as_array().unwrap();
    assert!(
        servers
            .iter()
            .any(|s| s["server"] == first.as_str() && s["reachable"] == false),
        "{health}"
    );
    assert!(
        servers
            .iter()
            .any(|s| s["server"] == second.as_str() && s["reachable"] == true),
        "{health}"
    );
    assert_eq!(health["status"], "degraded");
    // Without authentication: the same verdict, no server named.
    let public = http_get(&format!("{base}/health")).1;
    assert_eq!(public["status"], "degraded");
    assert!(!public.to_string().contains(first.as_str()), "{public}");
    assert_eq!(http_get(&format!("{base}/ready")).0, 200);
}

/// A GET without credentials: status and JSON body.
fn http_get(url: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "10", url])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}
