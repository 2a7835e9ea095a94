//! Encrypted snapshots end to end, with the real binary and real HTTP: curl uploads
//! (tar streams made by the system's `tar`, raw streams), restore jobs and one-time
//! download links, deduplication, rotations before, during and after backups,
//! tampering with stored packs and manifests, and interrupted uploads.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Api, World, assert_error, noise, restore, upload};
use serde_json::Value;

fn json_lines(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"_id\": {i}, \"name\": \"customer {i}\", \"balance\": {}}}\n",
            i * 37 % 1000
        ));
    }
    s.into_bytes()
}

/// Starts a rate-limited curl upload of `file` as a stream snapshot.
fn spawn_upload(
    api: &Api,
    g: &str,
    c: &str,
    file: &Path,
    rate: &str,
    stdout: Stdio,
) -> std::process::Child {
    Command::new("curl")
        .args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args([
            "-H",
            "Content-Type: application/octet-stream",
            "-X",
            "POST",
            "--limit-rate",
            rate,
            "-T",
        ])
        .arg(file)
        .arg(format!("{}/groups/{g}/clusters/{c}/snapshots", api.base))
        .stdout(stdout)
        .spawn()
        .unwrap()
}

/// Creates a restore job and downloads it; the HTTP status and the bytes.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("db/journal")).unwrap();
    std::fs::write(
        root.join("db/collection-0.wt"),
        noise(3 * 1024 * 1024 + 17, 7),
    )
    .unwrap();
    std::fs::write(root.join("db/index-1.wt"), json_lines(40_000)).unwrap();
    std::fs::write(
        root.join("db/journal/WiredTigerLog.0001"),
        noise(700_000, 9),
    )
    .unwrap();
    std::fs::write(root.join("db/empty"), b"").unwrap();
    std::os::unix::fs::symlink("collection-0.wt", root.join("db/latest")).unwrap();
}

fn tar_of(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

fn untar(bytes: &[u8], into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let mut child = Command::new("tar")
        .arg("-xf")
        .arg("-")
        .arg("-C")
        .arg(into)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success());
}

fn assert_same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

struct Fixture {
    w: World,
    g: String,
    c: String,
    scratch: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let w = World::new();
    let g = w.group("backups");
    let c = w.replica_set(&g, "rs0");
    w.enable_encryption(&g, &c);
    Fixture {
        w,
        g,
        c,
        scratch: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    fn packs(&self) -> Vec<PathBuf> {
        let dir = self.w.dir.path().join("chunks/packs").join(&self.c);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Backs `file` up as a stream; the snapshot's id.
    fn snapshot_of(&self, file: &Path) -> String {
        upload(&self.w.admin, &self.g, &self.c, file, false).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Downloads a snapshot through a new restore link that must refuse it: the error.
    fn refused_download(&self, snapshot: &str) -> Value {
        let api = &self.w.admin;
        let job = api.expect(
            api.post(
                &format!("/groups/{}/clusters/{}/restoreJobs", self.g, self.c),
                &format!(r#"{{"snapshotId":"{snapshot}"}}"#),
            ),
            200,
        );
        let url = job["results"][0]["delivery"]["url"].as_str().unwrap();
        let out = Command::new("curl").args(["-s", url]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn verify(&self, snapshot: &str) -> Value {
        self.w.admin.expect(
            self.w.admin.post(
                &format!(
                    "/groups/{}/clusters/{}/snapshots/{snapshot}/verify",
                    self.g, self.c
                ),
                "",
            ),
            200,
        )
    }
}

#[test]
fn a_tree_and_a_stream_restore_byte_for_byte_and_unchanged_data_is_not_stored_twice() {
    let f = fixture();
    let (api, g, c) = (&f.w.admin, &f.g, &f.c);
    let tree = f.path("tree");
    make_tree(&tree);
    let tarball = f.path("tree.tar");
    tar_of(&tree, &tarball);
    let first = upload(api, g, c, &tarball, true).unwrap();
    let part = &first["parts"][0];
    assert_eq!(first["complete"], true);
    assert_eq!(part["encryptionEnabled"], true);
    assert_eq!(part["masterKeyUUID"], f.w.key_of(g, c).as_str());
    let data = part["dataSizeBytes"].as_u64().unwrap();
    assert!(data > 4_000_000, "{first}");

    let (code, bytes) = restore(api, g, c, first["id"].as_str().unwrap());
    assert_eq!(code, 200);
    let back = f.path("back");
    untar(&bytes, &back);
    assert_same_tree(&tree, &back);

    // The same data again stores (almost) nothing.
    let second = upload(api, g, c, &tarball, true).unwrap();
    let stored = second["parts"][0]["storageSizeBytes"].as_u64().unwrap();
    assert!(
        stored * 100 < data,
        "second backup stored {stored} of {data} bytes"
    );

    // A raw stream.
    let stream = f.path("dump.archive");
    let mut content = json_lines(30_000);
    content.extend(noise(2_000_000, 3));
    std::fs::write(&stream, &content).unwrap();
    let snap = upload(api, g, c, &stream, false).unwrap();
    assert_eq!(snap["kind"], "stream");
    let (code, bytes) = restore(api, g, c, snap["id"].as_str().unwrap());
    assert_eq!(code, 200);
    assert!(
        bytes == content,
        "stream differs ({} vs {} bytes)",
        bytes.len(),
        content.len()
    );

    // Listing, newest first, and the entity.
    let list = api.expect(api.get(&format!("/groups/{g}/clusters/{c}/snapshots")), 200);
    assert_eq!(list["totalCount"], 3);
    assert_eq!(list["results"][0]["id"], snap["id"]);
    // A download link works once.
    let job = api.expect(
        api.post(
            &format!("/groups/{g}/clusters/{c}/restoreJobs"),
            &format!(r#"{{"snapshotId":{}}}"#, snap["id"]),
        ),
        200,
    );
    let url = job["results"][0]["delivery"]["url"].as_str().unwrap();
    // The job shows its link while it can be used, as Ops Manager's jobs do ...
    let job_path = format!(
        "/groups/{g}/clusters/{c}/restoreJobs/{}",
        job["results"][0]["id"].as_str().unwrap()
    );
    let shown = api.expect(api.get(&job_path), 200);
    assert_eq!(shown["delivery"]["url"], url);
    assert_eq!(shown["delivery"]["statusName"], "READY");
    let once = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&once.stdout), "200");
    let twice = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&twice.stdout), "410");
    // ... and not once it has been used.
    let used = api.expect(api.get(&job_path), 200);
    assert_eq!(used["delivery"]["statusName"], "DOWNLOADED");
    assert!(used["delivery"].get("url").is_none(), "{used}");
    let forged = format!("{}0", &url[..url.len() - 1]);
    let bad = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &forged])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "410");
}

#[test]
fn snapshots_taken_before_during_and_after_rotations_all_restore() {
    let f = fixture();
    let (api, g, c) = (&f.w.admin, &f.g, &f.c);
    let key_path = format!("/groups/{g}/backupConfigs/{c}/encryptionKey");
    let mut snaps = Vec::new();
    for round in 0..3u64 {
        let file = f.path(&format!("s{round}"));
        let content = noise(1_500_000 + round as usize * 1000, round + 11);
        std::fs::write(&file, &content).unwrap();
        snaps.push((
            upload(api, g, c, &file, false).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
            content,
        ));
        assert_eq!(api.put(&key_path).status, 201);
    }
    // A backup running while the key rotates: a slow upload, and rotations meanwhile.
    let big = f.path("during");
    let content = noise(6_000_000, 99);
    std::fs::write(&big, &content).unwrap();
    let slow = spawn_upload(api, g, c, &big, "3M", Stdio::piped());
    for _ in 0..3 {
        assert_eq!(api.put(&key_path).status, 201);
    }
    let out = slow.wait_with_output().unwrap();
    let during: Value =
        serde_json::from_slice(&out.stdout).expect("the backup succeeds despite the rotations");
    snaps.push((during["id"].as_str().unwrap().to_string(), content));
    assert_eq!(api.put(&key_path).status, 201);

    let current = f.w.key_of(g, c);
    // The key history says which key protects the snapshots now: only the current one.
    let history = api.expect(
        api.get(&format!("/groups/{g}/backupConfigs/{c}/encryptionKeys")),
        200,
    );
    let keys = history["results"].as_array().unwrap();
    assert_eq!(keys[0]["encryptionKeyUUID"], current.as_str());
    assert_eq!(keys[0]["snapshotCount"], snaps.len());
    assert!(
        keys[1..]
            .iter()
            .all(|k| k["snapshotCount"] == 0 && k["state"] == "Deactivated"),
        "{history}"
    );
    for (id, content) in &snaps {
        let s = api.expect(
            api.get(&format!("/groups/{g}/clusters/{c}/snapshots/{id}")),
            200,
        );
        assert_eq!(
            s["parts"][0]["masterKeyUUID"],
            current.as_str(),
            "every snapshot is under the current key"
        );
        let (code, bytes) = restore(api, g, c, id);
        assert_eq!(code, 200);
        assert!(bytes == *content, "snapshot {id} restores byte for byte");
        assert_eq!(f.verify(id)["ok"], true);
    }
}

#[test]
fn a_flipped_byte_in_a_pack_is_detected_by_verify_and_restore() {
    let f = fixture();
    let (api, g, c) = (&f.w.admin, &f.g, &f.c);
    let file = f.path("data");
    std::fs::write(&file, noise(3_000_000, 5)).unwrap();
    let a = f.snapshot_of(&file);
    let b = f.snapshot_of(&file);
    let packs = f.packs();
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&packs[0], &bytes).unwrap();

    let report = f.verify(&a);
    assert_eq!(report["ok"], false, "{report}");
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    let pack_id = packs[0].file_name().unwrap().to_str().unwrap();
    assert_eq!(damaged[0]["packId"], pack_id);
    let users: Vec<&str> = damaged[0]["snapshotIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        users.contains(&a.as_str()) && users.contains(&b.as_str()),
        "{report}"
    );

    // Restore never hands out wrong data: the transfer stops short.
    let (code, out) = restore(api, g, c, &a);
    assert!(
        code != 200 || out.len() < 3_000_000,
        "a damaged snapshot must not restore completely"
    );
    assert!(out != noise(3_000_000, 5));
}

/// Verification checks the ranges of a pack on several threads: every chunk is counted
/// once, and damage in two ranges (likely checked by different threads) is all reported.
#[test]
fn verify_counts_every_range_and_reports_damage_in_each() {
    let f = fixture();
    let file = f.path("data");
    // About 30 chunks in one pack, read as three ranges of at most 8 MiB; the two
    // flipped bytes, 18 MB apart, are in different ranges.
    let len = 20_000_000;
    std::fs::write(&file, noise(len, 9)).unwrap();
    let id = f.snapshot_of(&file);
    let whole = f.verify(&id);
    assert_eq!(whole["ok"], true, "{whole}");
    assert_eq!(whole["bytesChecked"], len, "{whole}");
    let chunks = whole["chunksChecked"].as_u64().unwrap();
    assert!(chunks > 20, "{whole}");

    let packs = f.packs();
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    for at in [bytes.len() / 20, bytes.len() / 20 * 19] {
        bytes[at] ^= 0x01;
    }
    std::fs::write(&packs[0], &bytes).unwrap();
    let report = f.verify(&id);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["chunksChecked"], chunks, "{report}");
    let damaged: std::collections::BTreeSet<&str> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["chunkId"].as_str().unwrap())
        .collect();
    assert_eq!(damaged.len(), 2, "{report}");
}

#[test]
fn a_swapped_chunk_and_a_truncated_manifest_are_detected() {
    let f = fixture();
    let c = &f.c;
    // Two snapshots whose first chunks differ but have the same stored length: random
    // data does not compress, so same-size inputs give same-size records. Below the
    // chunker's 128 KiB minimum each file is one chunk whatever the cluster's keyed cut
    // points (200,000 bytes were cut in two in 4 of 40 runs: the test was flaky).
    let one = f.path("one");
    let two = f.path("two");
    const { assert!(100_000 < headlock_core::snapshot::MIN_CHUNK) };
    std::fs::write(&one, noise(100_000, 1)).unwrap();
    std::fs::write(&two, noise(100_000, 2)).unwrap();
    let a = f.snapshot_of(&one);
    f.snapshot_of(&two);
    let packs = f.packs();
    assert_eq!(packs.len(), 2);
    // Put the record of one pack in place of the other's (same length, both valid AEAD).
    let p0 = std::fs::read(&packs[0]).unwrap();
    let p1 = std::fs::read(&packs[1]).unwrap();
    assert_eq!(p0.len(), p1.len());
    std::fs::write(&packs[0], &p1).unwrap();
    std::fs::write(&packs[1], &p0).unwrap();
    let report = f.verify(&a);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["damaged"].as_array().unwrap().len(), 1, "{report}");

    // A truncated manifest.
    let manifest = f.w.dir.path().join("chunks/manifests").join(c).join(&a);
    let m = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &m[..m.len() - 5]).unwrap();
    let report = f.verify(&a);
    assert_eq!(report["manifestOk"], false, "{report}");
    let v = f.refused_download(&a);
    assert_eq!(v["errorCode"], "SNAPSHOT_DAMAGED", "{v}");
    assert!(v["detail"].as_str().unwrap().contains(&a), "{v}");

    // Whole again, then with bytes after its final frame.
    std::fs::write(&manifest, &m).unwrap();
    assert_eq!(f.verify(&a)["manifestOk"], true);
    std::fs::write(&manifest, [&m[..], b"\0\0\0"].concat()).unwrap();
    let report = f.verify(&a);
    assert_eq!(report["manifestOk"], false, "{report}");
    let v = f.refused_download(&a);
    assert_eq!(v["errorCode"], "SNAPSHOT_DAMAGED", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("after its final frame"),
        "{v}"
    );
}

/// A pack the snapshot uses that is gone from the chunk store refuses the download
/// before any byte is sent, naming the pack (checked from the snapshot's record of the
/// packs it uses, not chunk by chunk).
#[test]
fn a_missing_pack_refuses_the_restore_before_any_byte() {
    let f = fixture();
    let file = f.path("data");
    std::fs::write(&file, noise(300_000, 6)).unwrap();
    let a = f.snapshot_of(&file);
    let packs = f.packs();
    assert_eq!(packs.len(), 1);
    let pack_id = packs[0].file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&packs[0]).unwrap();
    let v = f.refused_download(&a);
    assert_eq!(v["errorCode"], "SNAPSHOT_DAMAGED", "{v}");
    assert!(v["detail"].as_str().unwrap().contains(&pack_id), "{v}");
}

/// Verification checks the snapshot's record against its manifest: a chunk the manifest
/// names must be in a pack the record says the snapshot uses (here the record's pack
/// references are removed behind the service's back).
#[test]
fn verify_reports_a_chunk_outside_the_packs_the_snapshot_record_names() {
    let f = fixture();
    let file = f.path("data");
    std::fs::write(&file, noise(300_000, 7)).unwrap();
    let a = f.snapshot_of(&file);
    assert_eq!(f.verify(&a)["ok"], true);
    let removed = common::sqlite_execute(
        &f.w.server.data_dir.join("headlock.db"),
        "DELETE FROM snapshot_packs WHERE snapshot_id = ?",
        &[&a],
    );
    assert_eq!(removed, 1);
    let report = f.verify(&a);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["manifestOk"], false, "{report}");
    let why = report["manifestError"].as_str().unwrap();
    assert!(
        why.contains("the snapshot's record does not name"),
        "{report}"
    );
}

#[test]
fn an_interrupted_upload_leaves_no_snapshot_and_no_storage() {
    let f = fixture();
    let (api, g, c) = (&f.w.admin, &f.g, &f.c);
    let keep = f.path("keep");
    std::fs::write(&keep, noise(500_000, 4)).unwrap();
    let kept = upload(api, g, c, &keep, false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let packs_before = f.packs();

    let big = f.path("big");
    std::fs::write(&big, noise(80_000_000, 8)).unwrap();
    let mut client = spawn_upload(api, g, c, &big, "40M", Stdio::null());
    // Let it get past the first pack (24 MiB), then kill it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while f.packs().len() == packs_before.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    client.kill().unwrap();
    client.wait().unwrap();
    // The server notices the disconnect and removes what the backup wrote.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while f.packs() != packs_before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        f.packs(),
        packs_before,
        "no pack of the interrupted backup is left"
    );
    let list = api.expect(api.get(&format!("/groups/{g}/clusters/{c}/snapshots")), 200);
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["results"][0]["id"], kept.as_str());
    let (code, bytes) = restore(api, g, c, &kept);
    assert_eq!(code, 200);
    assert_eq!(bytes, noise(500_000, 4));
}

#[test]
fn a_server_killed_mid_upload_restarts_with_earlier_snapshots_intact() {
    let mut f = fixture();
    let (g, c) = (f.g.clone(), f.c.clone());
    let keep = f.path("keep");
    std::fs::write(&keep, json_lines(20_000)).unwrap();
    let kept = upload(&f.w.admin, &g, &c, &keep, false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let big = f.path("big");
    std::fs::write(&big, noise(80_000_000, 6)).unwrap();
    let api = f.w.admin.clone();
    let mut client = spawn_upload(&api, &g, &c, &big, "40M", Stdio::null());
    let before = f.packs().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while f.packs().len() == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f.w.server.kill();
    let _ = client.wait();
    f.w.server.start_again();
    f.w.admin.base = format!("{}/api/public/v1.0", f.w.server.url);
    let api = f.w.admin.clone();
    let list = api.expect(api.get(&format!("/groups/{g}/clusters/{c}/snapshots")), 200);
    assert_eq!(
        list["totalCount"], 1,
        "no partial snapshot is visible: {list}"
    );
    let (code, bytes) = restore(&api, &g, &c, &kept);
    assert_eq!(code, 200);
    assert_eq!(bytes, json_lines(20_000));
    // The orphaned pack is collected (at start, or by the next deletion).
    assert_eq!(
        f.packs().len(),
        before,
        "orphaned packs are collected at start"
    );
}

#[test]
fn encryption_cannot_be_disabled_and_the_cluster_not_deleted_while_snapshots_exist() {
    let f = fixture();
    let (api, g, c) = (&f.w.admin, &f.g, &f.c);
    let file = f.path("d");
    std::fs::write(&file, b"some data").unwrap();
    let s = upload(api, g, c, &file, false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        &api.patch(
            &format!("/groups/{g}/backupConfigs/{c}"),
            r#"{"encryptionEnabled":false}"#,
        ),
        409,
        "CANNOT_DISABLE_ENCRYPTION_SNAPSHOTS_EXIST",
    );
    assert_error(
        &api.delete(&format!("/groups/{g}/clusters/{c}")),
        409,
        "CANNOT_DELETE_CLUSTER",
    );
    // doNotDelete protects a snapshot; then deleting it frees its pack.
    let patched = api.expect(
        api.patch(
            &format!("/groups/{g}/clusters/{c}/snapshots/{s}"),
            r#"{"doNotDelete":true,"expires":"2030-01-01T00:00:00Z"}"#,
        ),
        200,
    );
    assert_eq!(patched["doNotDelete"], true);
    assert_eq!(patched["expires"], "2030-01-01T00:00:00Z");
    assert_error(
        &api.delete(&format!("/groups/{g}/clusters/{c}/snapshots/{s}")),
        409,
        "CANNOT_DELETE_SNAPSHOT_DO_NOT_DELETE",
    );
    api.expect(
        api.patch(
            &format!("/groups/{g}/clusters/{c}/snapshots/{s}"),
            r#"{"doNotDelete":false}"#,
        ),
        200,
    );
    assert_eq!(f.packs().len(), 1);
    assert_eq!(
        api.delete(&format!("/groups/{g}/clusters/{c}/snapshots/{s}"))
            .status,
        202
    );
    assert!(
        f.packs().is_empty(),
        "the pack no snapshot uses is collected"
    );
    assert_eq!(api.delete(&format!("/groups/{g}/clusters/{c}")).status, 202);
    // Backups need encryption.
    let c2 = f.w.replica_set(g, "plain");
    let r = upload(api, g, &c2, &file, false).unwrap_err();
    assert_eq!(r.0, 409, "{}", r.1);
    assert!(r.1.contains("CANNOT_BACKUP_ENCRYPTION_DISABLED"));
}
