//! Compromise recovery end to end, with the real binary over real HTTP: `POST
//! .../encryptionKey/compromised` against a third-party KMIP server (PyKMIP, started by
//! testkit), the re-encryption job rewriting every snapshot under a new data key,
//! restores byte for byte before, during and after, tampering still detected, garbage
//! collection of the old packs, and a job interrupted by a crash that resumes by itself
//! after a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Api, Server, World, assert_error, create_user, noise, restore, upload, with_pykmip};
use kmip::types::State;
use serde_json::Value;

fn json_lines(n: usize, salt: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"_id\": {i}, \"name\": \"customer {i}\", \"balance\": {}}}\n",
            (i * 37 + salt) % 1000
        ));
    }
    s.into_bytes()
}

/// A small database directory as a tar file (made by the system's `tar`).
fn tree_tar(scratch: &Path, name: &str, seed: u64) -> PathBuf {
    let root = scratch.join(format!("{name}-tree"));
    std::fs::create_dir_all(root.join("db/journal")).unwrap();
    std::fs::write(root.join("db/collection-0.wt"), noise(1_500_000, seed)).unwrap();
    std::fs::write(root.join("db/index-1.wt"), json_lines(20_000, 3)).unwrap();
    std::fs::write(
        root.join("db/journal/WiredTigerLog.0001"),
        noise(300_000, 9),
    )
    .unwrap();
    std::os::unix::fs::symlink("collection-0.wt", root.join("db/latest")).unwrap();
    let tar = scratch.join(format!("{name}.tar"));
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    tar
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The current key's entry in the key history.
fn current_history_entry(api: &Api, g: &str, c: &str) -> Value {
    let v = api.expect(
        api.get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKeys")),
        200,
    );
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["retired"].is_null())
        .cloned()
        .unwrap_or_else(|| panic!("no current key: {v}"))
}

fn encrypted_replica_set(api: &Api) -> (String, String) {
    let g = api.create_group("compromised");
    let c = api.create_encrypted_replica_set(&g, "rs0");
    (g, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn compromise_rewrites_every_snapshot_under_a_new_data_key_and_revokes_as_compromised() {
    let mut s = tokio::task::spawn_blocking(|| with_pykmip(&[]))
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let admin = s.admin.clone();
    let sp = scratch.path().to_path_buf();
    let (g, c, old_key, inputs, job) = tokio::task::spawn_blocking(move || {
        let (g, c) = encrypted_replica_set(&admin);
        let old_key = admin.current_key(&g, &c);
        // Snapshots before: a tree, and two streams that share most of their chunks.
        let mut inputs: Vec<(String, Vec<u8>, bool)> = Vec::new();
        // A tree restores as a tar stream rebuilt from its manifest: what it must match
        // after the re-encryption is its restore from before.
        let tar = tree_tar(&sp, "one", 7);
        let tree = id_of(&upload(&admin, &g, &c, &tar, true).unwrap());
        let (code, before) = restore(&admin, &g, &c, &tree);
        assert_eq!(code, 200);
        assert!(before.len() > 1_800_000, "{}", before.len());
        inputs.push((tree, before, true));
        let mut stream = noise(2_500_000, 11);
        stream.extend(json_lines(30_000, 1));
        for (i, tail) in [b"first".as_slice(), b"second".as_slice()]
            .iter()
            .enumerate()
        {
            let mut data = stream.clone();
            data.extend_from_slice(tail);
            let file = sp.join(format!("stream-{i}"));
            std::fs::write(&file, &data).unwrap();
            let v = upload(&admin, &g, &c, &file, false).unwrap();
            inputs.push((id_of(&v), data, false));
        }

        let r = admin.post(
            &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
            "",
        );
        let job = admin.expect(r, 202);
        assert_eq!(job["clusterId"], c.as_str(), "{job}");
        assert_eq!(job["groupId"], g.as_str(), "{job}");
        assert_eq!(job["snapshotsTotal"], 3, "{job}");
        assert!(
            job["links"][0]["href"]
                .as_str()
                .unwrap()
                .contains("/reencryptionJobs/")
        );
        // A second report while the job may still run is refused or finds it done;
        // never a second job on top of a running one.
        let again = admin.post(
            &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
            "",
        );
        assert!(again.status == 409 || again.status == 202, "{}", again.body);
        // A snapshot taken while the job runs (under the new data key).
        let during = noise(900_000, 21);
        let file = sp.join("during");
        std::fs::write(&file, &during).unwrap();
        let v = upload(&admin, &g, &c, &file, false).unwrap();
        inputs.push((id_of(&v), during, false));
        (g, c, old_key, inputs, id_of(&job))
    })
    .await
    .unwrap();

    // The old master key was revoked as compromised in PyKMIP; the new one is Active.
    assert_eq!(
        s.kmip.get_state(&old_key).await.unwrap(),
        State::COMPROMISED
    );
    let admin = s.admin.clone();
    let (g2, c2) = (g.clone(), c.clone());
    let new_key = tokio::task::spawn_blocking(move || admin.current_key(&g2, &c2))
        .await
        .unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(s.kmip.get_state(&new_key).await.unwrap(), State::ACTIVE);

    let admin = s.admin.clone();
    let packs_dir = s.dir.path().join("data/chunks/packs").join(&c);
    let manifests_dir = s.dir.path().join("data/chunks/manifests").join(&c);
    let (g2, c2, job2) = (g.clone(), c.clone(), job.clone());
    let inputs2 = inputs.clone();
    let packs_before_gc = tokio::task::spawn_blocking(move || {
        let (g, c, job) = (g2, c2, job2);
        let done = admin.finished_reencryption_job(&g, &c, &job);
        assert_eq!(done["statusName"], "FINISHED", "{done}");
        assert_eq!(done["snapshotsDone"], done["snapshotsTotal"], "{done}");
        assert!(done["snapshotsDone"].as_u64().unwrap() >= 2, "{done}");
        assert_eq!(done["bytesRemaining"], 0, "{done}");
        assert!(done["finished"].is_string(), "{done}");
        let list = admin.expect(
            admin.get(&format!("/groups/{g}/backupConfigs/{c}/reencryptionJobs")),
            200,
        );
        assert_eq!(list["totalCount"], 1, "{list}");
        // The old data key is gone: the current master key wraps one data key.
        let current = current_history_entry(&admin, &g, &c);
        assert_eq!(current["dataKeyCount"], 1, "{current}");
        assert_eq!(current["rotationType"], "COMPROMISE", "{current}");
        assert_eq!(admin.events_of(&g, "DATA_KEY_DESTROYED").len(), 1);
        assert_eq!(admin.events_of(&g, "REENCRYPTION_STARTED").len(), 1);
        let ended = admin.events_of(&g, "REENCRYPTION_FINISHED");
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0]["outcome"], "SUCCESS", "{ended:?}");
        // Every snapshot restores byte for byte.
        for (id, bytes, _) in &inputs2 {
            let (code, out) = restore(&admin, &g, &c, id);
            assert_eq!(code, 200, "snapshot {id}");
            assert!(out == *bytes, "snapshot {id} restores byte for byte");
        }
        files_under(&packs_dir)
    })
    .await
    .unwrap();

    // Garbage collection (at start) removes the packs and manifests under the old key.
    s.server.restart();
    s.admin.base = format!("{}/api/public/v1.0", s.server.url);
    let admin = s.admin.clone();
    let packs_dir = s.dir.path().join("data/chunks/packs").join(&c);
    tokio::task::spawn_blocking(move || {
        let packs_after = files_under(&packs_dir);
        assert!(
            packs_after.len() < packs_before_gc.len(),
            "old packs collected: {} before, {} after",
            packs_before_gc.len(),
            packs_after.len()
        );
        let manifests = files_under(&manifests_dir);
        assert_eq!(manifests.len(), inputs.len(), "{manifests:?}");
        for (id, bytes, _) in &inputs {
            let (code, out) = restore(&admin, &g, &c, id);
            assert_eq!(code, 200, "snapshot {id}");
            assert!(out == *bytes, "snapshot {id} restores after collection");
        }
        // Tampering with a rewritten snapshot is still detected.
        let (target, _, _) = &inputs[1];
        let pack = packs_after.first().expect("a pack").clone();
        let mut p = std::fs::read(&pack).unwrap();
        let at = p.len() / 2;
        p[at] ^= 0x55;
        std::fs::write(&pack, &p).unwrap();
        let mut damaged = 0;
        for (id, _, _) in &inputs {
            let report = admin.expect(
                admin.post(
                    &format!("/groups/{g}/clusters/{c}/snapshots/{id}/verify"),
                    "",
                ),
                200,
            );
            if report["ok"] == false {
                damaged += 1;
            }
        }
        assert!(damaged >= 1, "a flipped byte in {pack:?} goes unnoticed");
        let _ = target;
    })
    .await
    .unwrap();
}

#[test]
fn an_interrupted_reencryption_resumes_after_a_restart_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_user(dir.path(), "admin", "GLOBAL_OWNER", None);
    let mut server = Server::start_with_env(
        dir.path(),
        &[],
        &[("HEADLOCK_TEST_CRASH_AT", "reencrypt-after-snapshot")],
    );
    let mut admin = Api::new(&server, "admin", &key);
    let (g, c) = encrypted_replica_set(&admin);
    let scratch = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for seed in 1..=3u64 {
        let data = noise(600_000 + seed as usize * 1000, seed);
        let file = scratch.path().join(format!("s{seed}"));
        std::fs::write(&file, &data).unwrap();
        inputs.push((id_of(&upload(&admin, &g, &c, &file, false).unwrap()), data));
    }
    // The job starts in the background and the process aborts after the first switch
    // (the 202 may or may not get out first).
    let r = admin.try_call(
        "POST",
        &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
        None,
    );
    if let Ok(r) = &r {
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let status = server.wait_exit();
    assert!(!status.success());
    assert!(
        server
            .log()
            .contains("HEADLOCK_TEST_CRASH_AT=reencrypt-after-snapshot"),
        "{}",
        server.log()
    );
    server.start_again();
    admin.base = format!("{}/api/public/v1.0", server.url);
    let jobs = admin.expect(
        admin.get(&format!("/groups/{g}/backupConfigs/{c}/reencryptionJobs")),
        200,
    );
    assert_eq!(jobs["totalCount"], 1, "{jobs}");
    let job = jobs["results"][0]["id"].as_str().unwrap().to_string();
    let done = admin.finished_reencryption_job(&g, &c, &job);
    assert_eq!(done["statusName"], "FINISHED", "{done}");
    assert_eq!(done["snapshotsDone"], 3, "{done}");
    assert_eq!(done["snapshotsTotal"], 3, "{done}");
    assert!(
        server.log().contains("resuming re-encryption jobs"),
        "{}",
        server.log()
    );
    let current = current_history_entry(&admin, &g, &c);
    assert_eq!(current["dataKeyCount"], 1, "{current}");
    for (id, bytes) in &inputs {
        let (code, out) = restore(&admin, &g, &c, id);
        assert_eq!(code, 200, "snapshot {id}");
        assert!(out == *bytes, "snapshot {id} restores byte for byte");
    }
}

#[test]
fn rejects_compromise_without_encryption_and_unknown_jobs() {
    let w = World::new();
    let g = w.group("plain");
    let c = w.replica_set(&g, "rs0");
    let r = w.admin.post(
        &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
        "",
    );
    assert_error(&r, 409, "CANNOT_ROTATE_KEY_ENCRYPTION_DISABLED");
    let r = w.admin.get(&format!(
        "/groups/{g}/backupConfigs/{c}/reencryptionJobs/5196e5b0e4b0fca9cc88334a"
    ));
    assert_error(&r, 404, "REENCRYPTION_JOB_NOT_FOUND");
    // A read-only user may not report a compromise.
    w.enable_encryption(&g, &c);
    let reader = w.user("reader", "GROUP_READ_ONLY", Some(&g));
    let r = reader.post(
        &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
        "",
    );
    assert_error(&r, 403, "USER_UNAUTHORIZED");
    // With no snapshot, the job has nothing to rewrite and finishes at once.
    let job = w.admin.expect(
        w.admin.post(
            &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
            "",
        ),
        202,
    );
    assert_eq!(job["snapshotsTotal"], 0, "{job}");
    let done = w.admin.finished_reencryption_job(&g, &c, &id_of(&job));
    assert_eq!(done["statusName"], "FINISHED", "{done}");
}

#[test]
fn a_whole_sharded_cluster_gets_one_job_per_part() {
    let w = World::new();
    let g = w.group("sharded");
    let whole = id_of(&w.admin.expect(
        w.admin.post(
            &format!("/groups/{g}/clusters"),
            r#"{"clusterName":"sh","typeName":"SHARDED_REPLICA_SET","shards":[{"shardName":"s0","replicaSetName":"s0"},{"shardName":"s1","replicaSetName":"s1"}],"configServerReplicaSet":"sh-config"}"#,
        ),
        201,
    ));
    w.enable_encryption(&g, &whole);
    let v = w.admin.expect(
        w.admin.post(
            &format!("/groups/{g}/backupConfigs/{whole}/encryptionKey/compromised"),
            "",
        ),
        202,
    );
    let jobs = v["results"].as_array().unwrap();
    assert_eq!(v["totalCount"], jobs.len(), "{v}");
    assert_eq!(jobs.len(), 3, "two shards and the config servers: {v}");
    for job in jobs {
        let done = w
            .admin
            .finished_reencryption_job(&g, &whole, job["id"].as_str().unwrap());
        assert_eq!(done["statusName"], "FINISHED", "{done}");
        assert_ne!(done["clusterId"], whole.as_str());
    }
    let list = w.admin.expect(
        w.admin.get(&format!(
            "/groups/{g}/backupConfigs/{whole}/reencryptionJobs"
        )),
        200,
    );
    assert_eq!(list["totalCount"], 3, "{list}");
}
