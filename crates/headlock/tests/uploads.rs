//! Upload sessions (the incremental backup protocol) end to end, with the real binary
//! over a real socket and curl as the client: chunk keys only for backup rights,
//! known-chunk questions, chunks checked against their ids (a wrong one refused and
//! audited), resumed uploads that send only the rest, re-backups that send nothing, and
//! restores byte for byte.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

use common::{Api, Resp, World, assert_error, noise, restore};
use headlock_core::model::ChunkId;
use headlock_core::snapshot::ChunkIdKey;
use headlock_core::snapshot::chunker::{BoundaryKey, Chunker};
use serde_json::{Value, json};

/// A request with a raw body (written to a file for curl's `--data-binary @`).
fn raw(api: &Api, method: &str, path: &str, ctype: &str, body: &[u8]) -> Resp {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("curl")
        .args(["-s", "--digest", "-u"])
        .arg(format!("{}:{}", api.user, api.key))
        .args(["-H", &format!("Content-Type: {ctype}"), "-X", method])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .args(["-w", "\n%{http_code}", "--max-time", "120"])
        .arg(format!("{}{path}", api.base))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    Resp {
        status: code.parse().unwrap_or(0),
        body: body.to_string(),
    }
}

/// The client's side of a session: its keys and paths.
struct Session {
    base: String,
    ids: ChunkIdKey,
    boundaries: BoundaryKey,
    json: Value,
}

fn open(api: &Api, g: &str, c: &str) -> Session {
    let v = api.expect(
        api.post(&format!("/groups/{g}/clusters/{c}/snapshotUploads"), "{}"),
        201,
    );
    let id_key: [u8; 32] = hex::decode(v["chunkIdKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let boundary: [u8; 8] = hex::decode(v["chunkBoundaryKey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    Session {
        base: format!(
            "/groups/{g}/clusters/{c}/snapshotUploads/{}",
            v["id"].as_str().unwrap()
        ),
        ids: ChunkIdKey::from_bytes(id_key),
        boundaries: BoundaryKey::from_bytes(boundary),
        json: v,
    }
}

/// A file cut and named as a client does: (id, bytes) in order.
fn cut(s: &Session, data: &[u8]) -> Vec<(ChunkId, Vec<u8>)> {
    Chunker::new(s.boundaries)
        .cut(data)
        .map(|c| {
            let c = c.unwrap();
            (s.ids.id(&c.data), c.data)
        })
        .collect()
}

fn ask(api: &Api, s: &Session, ids: &[ChunkId]) -> Resp {
    let body: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
    raw(
        api,
        "POST",
        &format!("{}/chunkIds", s.base),
        "application/octet-stream",
        &body,
    )
}

fn missing(api: &Api, s: &Session, ids: &[ChunkId]) -> Vec<String> {
    let v = api.expect(ask(api, s, ids), 200);
    v["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

fn frames(chunks: &[(ChunkId, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (id, data) in chunks {
        body.extend_from_slice(&id.0);
        body.extend_from_slice(&(data.len() as u32).to_be_bytes());
        body.extend_from_slice(data);
    }
    body
}

fn send(api: &Api, s: &Session, chunks: &[(ChunkId, &[u8])]) -> Resp {
    raw(
        api,
        "PUT",
        &format!("{}/chunks", s.base),
        "application/octet-stream",
        &frames(chunks),
    )
}

/// A small tree: (path, content) for files, plus a directory and a symlink.
fn tree() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(
        "db/collection-0.wt".to_string(),
        noise(3 * 1024 * 1024 + 17, 7),
    );
    files.insert("db/index-1.wt".to_string(), noise(1_500_000, 11));
    files.insert("db/journal/log".to_string(), b"journal".repeat(1000));
    files.insert("db/empty".to_string(), Vec::new());
    files
}

/// Appends manifest lines for 10,000 directories `many/d{i}`, then `many`: with them a
/// manifest has three frames or more.
fn push_many_dirs(lines: &mut Vec<String>) {
    for i in 0..10_000 {
        lines.push(
            json!({"path": format!("many/d{i}"), "type": "dir", "mode": 0o755, "mtime": i, "size": 0})
                .to_string(),
        );
    }
    lines.push(
        json!({"path": "many", "type": "dir", "mode": 0o755, "mtime": 1, "size": 0}).to_string(),
    );
}

/// The NDJSON manifest of `files` cut for `s`, and every (id, bytes) in it.
fn manifest(s: &Session, files: &BTreeMap<String, Vec<u8>>) -> (String, Vec<(ChunkId, Vec<u8>)>) {
    let mut lines = vec![json!({"kind": "tree"}).to_string()];
    lines.push(
        json!({"path": "db", "type": "dir", "mode": 0o755, "mtime": 1_700_000_000, "size": 0})
            .to_string(),
    );
    lines.push(json!({"path": "db/journal", "type": "dir", "mode": 0o700, "mtime": 1_700_000_000, "size": 0}).to_string());
    lines.push(json!({"path": "db/latest", "type": "symlink", "mode": 0o777, "mtime": 1_700_000_000, "size": 0, "target": "collection-0.wt"}).to_string());
    let mut all = Vec::new();
    for (path, data) in files {
        let pieces = cut(s, data);
        let list: Vec<Value> = pieces
            .iter()
            .map(|(id, d)| json!([id.to_string(), d.len()]))
            .collect();
        lines.push(
            json!({"path": path, "type": "file", "mode": 0o644, "mtime": 1_700_000_001, "size": data.len(), "chunks": list})
                .to_string(),
        );
        all.extend(pieces);
    }
    (lines.join("\n") + "\n", all)
}

fn commit(api: &Api, s: &Session, ndjson: &str) -> Resp {
    raw(
        api,
        "POST",
        &format!("{}/commit", s.base),
        "application/x-ndjson",
        ndjson.as_bytes(),
    )
}

/// Restores a tree snapshot and checks every file byte for byte.
fn assert_restores(api: &Api, g: &str, c: &str, snapshot: &str, files: &BTreeMap<String, Vec<u8>>) {
    let (code, tar) = restore(api, g, c, snapshot);
    assert_eq!(code, 200);
    let mut found = BTreeMap::new();
    let mut link = None;
    for entry in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if entry.header().entry_type().is_file() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            found.insert(path, data);
        } else if entry.header().entry_type().is_symlink() {
            link = Some((
                path,
                entry
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .to_string(),
            ));
        }
    }
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (path, data) in files {
        assert!(found[path] == *data, "{path} differs after the restore");
    }
    assert_eq!(link, Some(("db/latest".into(), "collection-0.wt".into())));
}

/// A server, a group and an encrypted replica set with an open session that stored
/// one chunk of noise (`seed` odd).
fn one_chunk_uploaded(
    group: &str,
    seed: u64,
) -> (World, String, String, Session, Vec<u8>, ChunkId) {
    let (w, g, c, s) = opened(group);
    let data = noise(300_000, seed);
    let id = s.ids.id(&data);
    w.admin.expect(send(&w.admin, &s, &[(id, &data[..])]), 200);
    (w, g, c, s, data, id)
}

/// A server, a group, an encrypted replica set in it and an upload session open on it.
fn opened(group: &str) -> (World, String, String, Session) {
    let w = World::new();
    let g = w.group(group);
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let s = open(&w.admin, &g, &c);
    (w, g, c, s)
}

fn stored_bytes(snapshot: &Value) -> u64 {
    snapshot["parts"][0]["storageSizeBytes"].as_u64().unwrap()
}

#[test]
fn an_upload_sends_only_what_is_missing_and_restores_byte_for_byte() {
    let w = World::new();
    let g = w.group("incr");
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let files = tree();

    // First backup: everything is missing, everything is sent.
    let s = open(&w.admin, &g, &c);
    assert_eq!(s.json["maxChunkBytes"], 4 * 1024 * 1024);
    let (ndjson, all) = manifest(&s, &files);
    let ids: Vec<ChunkId> = all.iter().map(|(id, _)| *id).collect();
    assert!(ids.len() >= 4, "{} chunks", ids.len());
    assert_eq!(missing(&w.admin, &s, &ids).len(), ids.len());
    let refs: Vec<(ChunkId, &[u8])> = all.iter().map(|(id, d)| (*id, &d[..])).collect();
    let report = w.admin.expect(send(&w.admin, &s, &refs), 200);
    assert_eq!(report["received"], ids.len());
    assert!(
        missing(&w.admin, &s, &ids).is_empty(),
        "stored chunks are known at once"
    );
    let first = w.admin.expect(commit(&w.admin, &s, &ndjson), 201);
    assert!(stored_bytes(&first) > 4_000_000, "{first}");
    assert_eq!(first["kind"], "tree");
    assert_eq!(
        first["parts"][0]["dataSizeBytes"].as_u64().unwrap(),
        files.values().map(|d| d.len() as u64).sum::<u64>()
    );
    assert_restores(&w.admin, &g, &c, first["id"].as_str().unwrap(), &files);

    // The same data again: the same keys, every chunk known, no chunk bytes sent.
    let again = open(&w.admin, &g, &c);
    assert_eq!(again.json["chunkIdKey"], s.json["chunkIdKey"]);
    assert_eq!(again.json["chunkBoundaryKey"], s.json["chunkBoundaryKey"]);
    let (ndjson2, all2) = manifest(&again, &files);
    let ids2: Vec<ChunkId> = all2.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids2, ids);
    assert!(missing(&w.admin, &again, &ids2).is_empty());
    let second = w.admin.expect(commit(&w.admin, &again, &ndjson2), 201);
    assert_eq!(stored_bytes(&second), 0, "{second}");
    assert_restores(&w.admin, &g, &c, second["id"].as_str().unwrap(), &files);

    // A committed session is closed.
    assert_error(
        &ask(&w.admin, &again, &ids2),
        404,
        "UPLOAD_SESSION_NOT_FOUND",
    );
    // Plain uploads and sessions deduplicate against each other: one boundary rule.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c0");
    std::fs::write(&file, &files["db/collection-0.wt"]).unwrap();
    let plain = common::upload(&w.admin, &g, &c, &file, false).unwrap();
    assert_eq!(stored_bytes(&plain), 0, "{plain}");
}

#[test]
fn a_resumed_upload_sends_only_the_rest() {
    let w = World::new();
    let g = w.group("resume");
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let files = tree();

    // The first run stores half of the chunks, then stops (the client was killed).
    let s = open(&w.admin, &g, &c);
    let (_, all) = manifest(&s, &files);
    let half = all.len() / 2;
    let refs: Vec<(ChunkId, &[u8])> = all[..half].iter().map(|(id, d)| (*id, &d[..])).collect();
    w.admin.expect(send(&w.admin, &s, &refs), 200);

    // The re-run: a new session, which is told to send exactly the other half.
    let again = open(&w.admin, &g, &c);
    assert_ne!(again.base, s.base);
    let (ndjson, all2) = manifest(&again, &files);
    let ids: Vec<ChunkId> = all2.iter().map(|(id, _)| *id).collect();
    let mut want: Vec<String> = all2[half..].iter().map(|(id, _)| id.to_string()).collect();
    want.dedup();
    assert_eq!(missing(&w.admin, &again, &ids), want);
    // Committing before sending them names what is missing.
    let r = commit(&w.admin, &again, &ndjson);
    let e = assert_error(&r, 409, "CHUNKS_NOT_STORED");
    assert_eq!(e["parameters"][1], want.len().to_string());
    let rest: Vec<(ChunkId, &[u8])> = all2[half..].iter().map(|(id, d)| (*id, &d[..])).collect();
    w.admin.expect(send(&w.admin, &again, &rest), 200);
    let snap = w.admin.expect(commit(&w.admin, &again, &ndjson), 201);
    assert_restores(&w.admin, &g, &c, snap["id"].as_str().unwrap(), &files);

    // Abandoning the first session leaves the snapshot whole after collection.
    assert_eq!(w.admin.delete(&s.base).status, 204);
    assert_error(&ask(&w.admin, &s, &ids), 404, "UPLOAD_SESSION_NOT_FOUND");
    assert_restores(&w.admin, &g, &c, snap["id"].as_str().unwrap(), &files);
}

#[test]
fn a_chunk_under_a_wrong_id_is_refused_audited_and_not_kept() {
    let w = World::new();
    let g = w.group("poison");
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let s = open(&w.admin, &g, &c);
    // (`noise` ignores the seed's lowest bit: odd seeds only.)
    let good = noise(300_000, 11);
    let evil = noise(300_000, 13);
    let good_id = s.ids.id(&good);
    let evil_id = s.ids.id(&evil);
    // A good chunk first, then the evil bytes under the good chunk's... other id.
    let other = noise(300_000, 15);
    let other_id = s.ids.id(&other);
    let r = send(
        &w.admin,
        &s,
        &[(other_id, &other[..]), (good_id, &evil[..])],
    );
    let e = assert_error(&r, 400, "CHUNK_ID_MISMATCH");
    assert_eq!(e["parameters"][0], good_id.to_string());
    // Nothing of the request was kept, not even its good chunk.
    assert_eq!(
        missing(&w.admin, &s, &[good_id, other_id, evil_id]).len(),
        3
    );
    let events = w.admin.events_of(&g, "CHUNK_ID_MISMATCH");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "FAILURE");
    assert_eq!(events[0]["username"], "admin");
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&good_id.to_string())
    );
    // The right bytes under that id are then accepted.
    w.admin
        .expect(send(&w.admin, &s, &[(good_id, &good[..])]), 200);
    assert!(missing(&w.admin, &s, &[good_id]).is_empty());
    // An id computed with another key (another cluster's) is refused too.
    let stranger = ChunkIdKey::from_bytes([9u8; 32]);
    let r = send(&w.admin, &s, &[(stranger.id(&evil), &evil[..])]);
    assert_error(&r, 400, "CHUNK_ID_MISMATCH");
    assert_eq!(w.admin.events_of(&g, "CHUNK_ID_MISMATCH").len(), 2);
    // A repeat of an id within a request is sealed once, but its bytes are checked all
    // the same: the right bytes, then other bytes under the same id, are refused whole.
    let fresh = noise(300_000, 17);
    let fresh_id = s.ids.id(&fresh);
    let r = send(
        &w.admin,
        &s,
        &[(fresh_id, &fresh[..]), (fresh_id, &evil[..])],
    );
    let e = assert_error(&r, 400, "CHUNK_ID_MISMATCH");
    assert_eq!(e["parameters"][0], fresh_id.to_string());
    assert_eq!(missing(&w.admin, &s, &[fresh_id]).len(), 1);
    assert_eq!(w.admin.events_of(&g, "CHUNK_ID_MISMATCH").len(), 3);
}

#[test]
fn chunk_keys_and_questions_only_for_backup_rights_in_the_group() {
    let w = World::new();
    let g = w.group("mine");
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let other_g = w.group("theirs");
    let other_c = w.admin.create_encrypted_replica_set(&other_g, "rs1");
    let s = open(&w.admin, &g, &c);
    let ids = [s.ids.id(b"x")];

    // A reader of the group gets no keys.
    let reader = w.user("reader", "GROUP_READ_ONLY", Some(&g));
    let path = format!("/groups/{g}/clusters/{c}/snapshotUploads");
    let r = reader.post(&path, "{}");
    assert_error(&r, 403, "USER_UNAUTHORIZED");
    assert!(!r.body.contains("chunkIdKey"));
    assert_error(&ask(&reader, &s, &ids), 403, "USER_UNAUTHORIZED");

    // A backup admin of another group gets nothing of this one.
    let stranger = w.user("stranger", "GROUP_BACKUP_ADMIN", Some(&other_g));
    assert_error(&stranger.post(&path, "{}"), 401, "NOT_IN_GROUP");
    assert_error(&ask(&stranger, &s, &ids), 401, "NOT_IN_GROUP");
    let r = send(&stranger, &s, &[(ids[0], b"x")]);
    assert_error(&r, 401, "NOT_IN_GROUP");
    // Nor through its own cluster's path: the session is not of that cluster.
    let theirs = open(&stranger, &other_g, &other_c);
    let upload = s.base.rsplit('/').next().unwrap();
    let borrowed = Session {
        base: format!("/groups/{other_g}/clusters/{other_c}/snapshotUploads/{upload}"),
        ..theirs
    };
    assert_error(
        &ask(&stranger, &borrowed, &ids),
        404,
        "UPLOAD_SESSION_NOT_FOUND",
    );
    // Two clusters' keys differ, so their ids and boundaries do too.
    assert_ne!(borrowed.json["chunkIdKey"], s.json["chunkIdKey"]);
    assert_ne!(
        borrowed.json["chunkBoundaryKey"],
        s.json["chunkBoundaryKey"]
    );

    let refused = w.admin.events_of(&g, "SNAPSHOT_UPLOAD_REFUSED");
    assert!(refused.len() >= 4, "{refused:?}");
    assert!(refused.iter().any(|e| e["username"] == "stranger"));
    assert!(refused.iter().any(|e| e["username"] == "reader"));
    // The question about this cluster's session through the other cluster's path is
    // recorded in the other group.
    let borrowed_refused = w.admin.events_of(&other_g, "SNAPSHOT_UPLOAD_REFUSED");
    assert!(
        borrowed_refused.iter().any(|e| e["username"] == "stranger"),
        "{borrowed_refused:?}"
    );
    let started = w.admin.events_of(&g, "SNAPSHOT_UPLOAD_STARTED");
    assert_eq!(started.len(), 1);
    assert!(
        !started[0]
            .to_string()
            .contains(s.json["chunkIdKey"].as_str().unwrap())
    );
}

#[test]
fn a_session_opened_before_a_compromise_is_stale_and_a_new_one_has_new_keys() {
    let (w, g, c, s, data, id) = one_chunk_uploaded("stale", 5);
    let started = w.admin.expect(
        w.admin.post(
            &format!("/groups/{g}/backupConfigs/{c}/encryptionKey/compromised"),
            "",
        ),
        202,
    );
    let job = started["id"].as_str().expect("a job id").to_string();
    assert_error(&ask(&w.admin, &s, &[id]), 409, "UPLOAD_SESSION_STALE");
    assert_error(
        &send(&w.admin, &s, &[(id, &data[..])]),
        409,
        "UPLOAD_SESSION_STALE",
    );
    let fresh = open(&w.admin, &g, &c);
    // Neither the stale session, left open as a client that died would leave it, nor
    // one under the new key holds the re-encryption job back (neither can add a
    // snapshot under the old key any more): the job ends while both are open, well
    // before the stale one's lease would lapse (15 minutes).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v = w.admin.expect(
            w.admin.get(&format!(
                "/groups/{g}/backupConfigs/{c}/reencryptionJobs/{job}"
            )),
            200,
        );
        if v["statusName"] != "RUNNING" {
            assert_eq!(v["statusName"], "FINISHED", "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job waited for an open upload session: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A stale session can still be ended, after the job too.
    assert_eq!(w.admin.delete(&s.base).status, 204);
    assert_ne!(fresh.json["chunkIdKey"], s.json["chunkIdKey"]);
    assert_ne!(fresh.json["chunkBoundaryKey"], s.json["chunkBoundaryKey"]);
    // The old key's id means nothing under the new one.
    let new_id = fresh.ids.id(&data);
    assert_eq!(missing(&w.admin, &fresh, &[new_id]).len(), 1);
    assert_error(
        &send(&w.admin, &fresh, &[(id, &data[..])]),
        400,
        "CHUNK_ID_MISMATCH",
    );
    w.admin
        .expect(send(&w.admin, &fresh, &[(new_id, &data[..])]), 200);
    let ndjson = format!(
        "{}\n{}\n",
        json!({"kind": "stream"}),
        json!({"path": "stream", "type": "file", "mode": 0o600, "mtime": 1, "size": data.len(), "chunks": [[new_id.to_string(), data.len()]]})
    );
    let snap = w.admin.expect(commit(&w.admin, &fresh, &ndjson), 201);
    let (code, bytes) = restore(&w.admin, &g, &c, snap["id"].as_str().unwrap());
    assert_eq!(code, 200);
    assert!(bytes == data);
}

#[test]
fn a_live_session_keeps_collection_away_from_its_chunks_until_it_ends() {
    let w = World::new();
    let g = w.group("gc");
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let plain_snapshot = || {
        std::fs::write(&file, noise(200_000, 21)).unwrap();
        let v = common::upload(&w.admin, &g, &c, &file, false).unwrap();
        format!(
            "/groups/{g}/clusters/{c}/snapshots/{}",
            v["id"].as_str().unwrap()
        )
    };

    let s = open(&w.admin, &g, &c);
    let data = noise(500_000, 23);
    let id = s.ids.id(&data);
    w.admin.expect(send(&w.admin, &s, &[(id, &data[..])]), 200);
    // A deletion collects garbage at once; the session's chunk, used by no snapshot
    // yet, is kept while the session lives.
    let first = plain_snapshot();
    assert_eq!(w.admin.delete(&first).status, 202);
    assert!(missing(&w.admin, &s, &[id]).is_empty());

    // Once it ends, the next collection removes it.
    assert_eq!(w.admin.delete(&s.base).status, 204);
    let second = plain_snapshot();
    assert_eq!(w.admin.delete(&second).status, 202);
    let again = open(&w.admin, &g, &c);
    assert_eq!(missing(&w.admin, &again, &[id]).len(), 1);
}

#[test]
fn rejects_commits_that_misstate_chunks_or_break_the_manifest_rules() {
    let (w, g, c, s, data, id) = one_chunk_uploaded("manifests", 25);
    let stream = |path: &str, len: usize| {
        format!(
            "{}\n{}\n",
            json!({"kind": "stream"}),
            json!({"path": path, "type": "file", "mode": 0o600, "mtime": 1, "size": len, "chunks": [[id.to_string(), len]]})
        )
    };
    // A stored chunk under another length would restore as other bytes than listed.
    let e = assert_error(
        &commit(&w.admin, &s, &stream("stream", data.len() - 1)),
        409,
        "CHUNKS_NOT_STORED",
    );
    assert_eq!(e["parameters"][0], id.to_string());
    assert_error(
        &commit(&w.admin, &s, &stream("../escape", data.len())),
        400,
        "INVALID_ATTRIBUTE",
    );
    assert_error(&commit(&w.admin, &s, ""), 400, "INVALID_ATTRIBUTE");
    assert_error(
        &commit(&w.admin, &s, "{\"kind\": \"tree\", \"extra\": 1}\n"),
        400,
        "INVALID_ATTRIBUTE",
    );
    // One chunk under two lengths is refused, however many entries apart: here 9,000
    // files name it rightly between the two (the commit gathers and compacts the
    // chunks it names in bounded steps), the wrong length first or last.
    let file = |i: usize, len: usize| {
        json!({"path": format!("f{i}"), "type": "file", "mode": 0o600, "mtime": 1, "size": len, "chunks": [[id.to_string(), len]]})
            .to_string()
    };
    for wrong_at in [0, 9_001] {
        let mut lines = vec![json!({"kind": "tree"}).to_string()];
        for i in 0..=9_001 {
            let len = if i == wrong_at {
                data.len() + 1
            } else {
                data.len()
            };
            lines.push(file(i, len));
        }
        let e = assert_error(
            &commit(&w.admin, &s, &(lines.join("\n") + "\n")),
            400,
            "INVALID_ATTRIBUTE",
        );
        assert!(
            e["detail"]
                .as_str()
                .unwrap()
                .contains("is listed with lengths"),
            "{e}"
        );
    }
    // The sealed manifest is spooled to <data dir>/tmp: where that cannot be, the
    // commit fails as the service's own fault (500), not the client's.
    let spool = w.dir.path().join("tmp");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();
    let e = assert_error(
        &commit(&w.admin, &s, &stream("stream", data.len())),
        500,
        "UNEXPECTED_ERROR",
    );
    assert!(e["detail"].is_string(), "{e}");
    let log = w.server.log.lock().unwrap().clone();
    assert!(log.contains("a manifest's spool file"), "{log}");
    std::fs::remove_file(&spool).unwrap();
    // The session is still open after refused commits, and commits when right; the
    // spool file is gone (unlinked from the start).
    let snap = w
        .admin
        .expect(commit(&w.admin, &s, &stream("stream", data.len())), 201);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let (code, bytes) = restore(&w.admin, &g, &c, snap["id"].as_str().unwrap());
    assert_eq!(code, 200);
    assert!(bytes == data);
}

/// The parent answer of a new session for `source`, read with curl (Digest): its
/// header block and its JSON.
fn parent_answer(w: &World, g: &str, c: &str, source: &str) -> (String, Value) {
    let next = open(&w.admin, g, c);
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "--digest", "-u"])
        .arg(format!("{}:{}", w.admin.user, w.admin.key))
        .arg(format!(
            "{}{}/parent?source={source}",
            w.admin.base, next.base
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    // Digest auth answers 401 first; the last header block is the answer's.
    let (head, body) = match body.split_once("\r\n\r\n") {
        Some((h, b)) if h.starts_with("HTTP/") => (h, b),
        _ => (head, body),
    };
    (head.to_string(), serde_json::from_str(body).unwrap())
}

/// The parent answer is written a manifest frame at a time (4,096 entries a frame):
/// a manifest of several frames comes back whole, in order, as one JSON document, and
/// no cache may keep it. A file one of whose chunks the cluster no longer has is left
/// out (the client must read it again).
#[test]
fn a_parent_of_several_manifest_frames_is_answered_whole_and_not_cached() {
    let w = World::new();
    let g = w.group("parent");
    let c = w.admin.create_encrypted_replica_set(&g, "rs0");
    let files = tree();
    let s = open(&w.admin, &g, &c);
    let (ndjson, all) = manifest(&s, &files);
    let refs: Vec<(ChunkId, &[u8])> = all.iter().map(|(id, d)| (*id, &d[..])).collect();
    w.admin.expect(send(&w.admin, &s, &refs), 200);
    // The tree's lines, then 10,000 more directories: three frames and more.
    let mut lines: Vec<String> = ndjson.lines().map(str::to_string).collect();
    lines[0] = json!({"kind": "tree", "source": "/data/many"}).to_string();
    push_many_dirs(&mut lines);
    let committed = w
        .admin
        .expect(commit(&w.admin, &s, &(lines.join("\n") + "\n")), 201);

    let (head, v) = parent_answer(&w, &g, &c, "/data/many");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{head}"
    );
    assert_eq!(v["snapshot"], committed["id"]);
    assert_eq!(v["source"], "/data/many");
    let paths: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let sent: Vec<String> = lines[1..]
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(paths, sent);

    // One chunk of one file removed behind the service's back (SQLite without its
    // foreign keys, as damage would): that file, and only it, is left out.
    let gone = &all
        .iter()
        .find(|(_, d)| files["db/index-1.wt"].starts_with(d))
        .expect("a chunk of db/index-1.wt")
        .0;
    let removed = common::sqlite_execute(
        &w.server.data_dir.join("headlock.db"),
        "DELETE FROM chunks WHERE cluster_id = ? AND chunk_id = ?",
        &[&c, &gone.to_string()],
    );
    assert_eq!(removed, 1);
    let (_, v) = parent_answer(&w, &g, &c, "/data/many");
    let left: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = sent
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "db/index-1.wt")
        .collect();
    assert_eq!(left, expected);
}

/// Before a download sends a byte, the chunks of every manifest frame are looked up
/// (several frames' lookups at once): a chunk missing in a late frame refuses it, and
/// with chunks missing in two frames the one named is the first in the manifest.
#[test]
fn a_chunk_missing_in_any_frame_refuses_the_download_naming_the_first() {
    let (w, g, c, s) = opened("missing");
    let files = tree();
    let (ndjson, all) = manifest(&s, &files);
    let refs: Vec<(ChunkId, &[u8])> = all.iter().map(|(id, d)| (*id, &d[..])).collect();
    w.admin.expect(send(&w.admin, &s, &refs), 200);
    // The tree's lines with db/collection-0.wt moved after 10,000 directories: its
    // chunks are named in the third frame only, db/index-1.wt's in the first.
    let mut lines: Vec<String> = ndjson.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("\"db/collection-0.wt\""))
        .unwrap();
    let late = lines.remove(at);
    push_many_dirs(&mut lines);
    lines.push(late);
    let snap = w
        .admin
        .expect(commit(&w.admin, &s, &(lines.join("\n") + "\n")), 201);
    let id = snap["id"].as_str().unwrap();
    assert_restores(&w.admin, &g, &c, id, &files);

    let first_chunk_of = |path: &str| {
        all.iter()
            .find(|(_, d)| files[path].starts_with(d))
            .expect("a chunk of the file")
            .0
    };
    let forget = |chunk: ChunkId| {
        // Behind the service's back (SQLite without its foreign keys), as damage would.
        let removed = common::sqlite_execute(
            &w.server.data_dir.join("headlock.db"),
            "DELETE FROM chunks WHERE cluster_id = ? AND chunk_id = ?",
            &[&c, &chunk.to_string()],
        );
        assert_eq!(removed, 1);
    };
    let refused = || {
        let (code, body) = restore(&w.admin, &g, &c, id);
        assert_ne!(code, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errorCode"], "SNAPSHOT_DAMAGED", "{v}");
        v["detail"].as_str().unwrap().to_string()
    };
    let late_chunk = first_chunk_of("db/collection-0.wt");
    forget(late_chunk);
    let detail = refused();
    assert!(detail.contains(&late_chunk.to_string()), "{detail}");
    let early_chunk = first_chunk_of("db/index-1.wt");
    forget(early_chunk);
    let detail = refused();
    assert!(detail.contains(&early_chunk.to_string()), "{detail}");
}

/// Verification reads the snapshot's chunk locations a page (8,192) at a time: a
/// snapshot of more chunks than a page is checked whole, each chunk once.
#[test]
fn verify_checks_every_chunk_of_a_snapshot_larger_than_one_page() {
    let (w, g, c, s) = opened("pages");
    let files: BTreeMap<String, Vec<u8>> = (0..8_300u32)
        .map(|i| (format!("db/f{i}"), format!("file {i}").into_bytes()))
        .collect();
    let (ndjson, all) = manifest(&s, &files);
    assert_eq!(all.len(), 8_300);
    let refs: Vec<(ChunkId, &[u8])> = all.iter().map(|(id, d)| (*id, &d[..])).collect();
    w.admin.expect(send(&w.admin, &s, &refs), 200);
    let snap = w.admin.expect(commit(&w.admin, &s, &ndjson), 201);
    let id = snap["id"].as_str().unwrap();
    let report = w.admin.expect(
        w.admin.post(
            &format!("/groups/{g}/clusters/{c}/snapshots/{id}/verify"),
            "",
        ),
        200,
    );
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["chunksChecked"], 8_300, "{report}");
    let bytes: usize = files.values().map(Vec::len).sum();
    assert_eq!(report["bytesChecked"], bytes, "{report}");
}
